// Package fnbox is the root of the function container module: fnbox joins
// a consumer group per function, feeds events to the user's code through a
// runtime (package runtime and its platform subpackages) and writes what
// the code returns and emits, committing only what is done.
package fnbox
