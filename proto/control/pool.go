package control

// A shared fnbox (a pool) runs the instances of every `isolation: shared`
// deployment of one platform in one process, with one runtime host process
// for all of their functions (docs/descriptor.md#isolation). The deployer
// starts it as `fnbox --pool DIR` and talks to it through files in DIR, as
// it does with a lone fnbox through its ready file: they survive a restart
// of either side, and need no port.
//
//	DIR/pool.ready               the pool is up (a ReadyFile, Instance "pool")
//	DIR/members/<instance>.json  a PoolMember: run this instance; delete the
//	                             file to stop it (drain, commit, leave groups)
//	DIR/members/<instance>.exit  a PoolExit: the instance ended, on its own or
//	                             after its file was deleted
//
// A member is ready when the ready file named in its Args exists, exactly
// as for a lone fnbox. The pool writes each file atomically (a temporary
// name, then rename).
const (
	// PoolFlag is fnbox's flag naming a pool directory: run as a pool.
	PoolFlag = "pool"
	// PoolReadyFile is the pool's own ready file in the pool directory.
	PoolReadyFile = "pool.ready"
	// PoolMembersDir is the members' directory in the pool directory.
	PoolMembersDir = "members"
	// PoolMemberExt and PoolExitExt are the extensions of a member's file
	// and of its exit file.
	PoolMemberExt = ".json"
	PoolExitExt   = ".exit"
)

// PoolMember is one instance run inside a pool: the fnbox command line it
// would have alone.
type PoolMember struct {
	// Instance is the instance id, the file's base name.
	Instance string `json:"instance"`
	// Args are fnbox's flags for this instance alone: --code,
	// --descriptor, --functions, --instance, --slot, --ready-file and the
	// Kafka flags of the deployment's own principal.
	Args []string `json:"args"`
	// Env holds the BUTTER_* values fnbox reads from its environment for
	// this instance (the SASL password, kept out of Args as it is out of
	// ps). It is applied to this instance's configuration only, never to
	// the pool's process environment.
	Env map[string]string `json:"env,omitempty"`
}

// PoolExit is the content of a member's exit file.
type PoolExit struct {
	// Error says why the instance ended; empty when it was stopped.
	Error string `json:"error,omitempty"`
	// LoadError reports that its code failed to load: restarting cannot
	// fix it (as ExitCodeLoadError for a lone fnbox).
	LoadError bool `json:"loadError,omitempty"`
}
