// Package store is the tracer's index: an embedded SQLite database
// (modernc.org/sqlite, pure Go) in the data dir that is a rebuildable cache
// of the topics it reads. Every batch of records is applied in one
// transaction together with the next offset of each partition it came
// from, so after a kill -9 the tracer resumes exactly where the last
// committed batch ended: no record is indexed twice or skipped. Deleting
// the file rebuilds the index from the topics.
package store

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

// File is the index's file name in the data dir.
const File = "tracer.db"

// writerCacheKiB is the page cache of the writer's connection.
const writerCacheKiB = 64 << 10

// walCheckpointPages is the WAL's size (in 4 KiB pages) at which a commit
// copies it into the database file.
const walCheckpointPages = 16000

// Store is the index. Reads may run concurrently with the one writer.
type Store struct {
	db *sql.DB

	// The one writer has a connection of its own (its page cache stays
	// warm) and prepares each statement once for the life of the store.
	wmu   sync.Mutex
	w     *sql.Conn
	stmts map[string]*sql.Stmt

	mu      sync.Mutex
	changed chan struct{} // closed and replaced after every commit
}

// Open opens (creating) the index in dir.
func Open(dir string) (*Store, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create tracer data dir: %w", err)
	}
	path := filepath.Join(dir, File)
	// WAL lets the API read while the ingester writes. synchronous=NORMAL
	// keeps every commit across a process kill (the WAL is in the OS's
	// hands once written); a power loss may drop the last commits, but
	// their offsets go with them, so those records are read again.
	dsn := "file:" + path + "?_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_pragma=busy_timeout(10000)&_txlock=immediate"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("open tracer index %s: %w", path, err)
	}
	db.SetMaxOpenConns(8)
	// The index is a cache: one made by another version is dropped and
	// rebuilt from the topics rather than migrated.
	var version int
	if err := db.QueryRow(`PRAGMA user_version`).Scan(&version); err != nil {
		db.Close()
		return nil, fmt.Errorf("open tracer index %s: %w", path, err)
	}
	if version != 0 && version != schemaVersion {
		db.Close()
		for _, f := range []string{path, path + "-wal", path + "-shm"} {
			if err := os.Remove(f); err != nil && !os.IsNotExist(err) {
				return nil, fmt.Errorf("drop tracer index of another version: %w", err)
			}
		}
		return Open(dir)
	}
	if _, err := db.Exec(schema + fmt.Sprintf("PRAGMA user_version = %d;", schemaVersion)); err != nil {
		db.Close()
		return nil, fmt.Errorf("create tracer index schema in %s (delete the file to rebuild it from the topics): %w", path, err)
	}
	w, err := db.Conn(context.Background())
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("open tracer index %s: %w", path, err)
	}
	// Spans arrive in random trace id order, so their inserts touch pages
	// all over the index: the writer keeps more of them in memory than
	// SQLite's default 2 MiB (the readers keep the default).
	//
	// The writer's commits checkpoint the WAL into the database file every
	// walCheckpointPages pages rather than SQLite's 1000: a page written by
	// many commits in between (the ends of the time indexes, the last
	// pages of the spans table) is copied once.
	if _, err := w.ExecContext(context.Background(), fmt.Sprintf(`PRAGMA cache_size = %d; PRAGMA wal_autocheckpoint = %d`,
		-writerCacheKiB, walCheckpointPages)); err != nil {
		w.Close()
		db.Close()
		return nil, fmt.Errorf("open tracer index %s: %w", path, err)
	}
	return &Store{db: db, w: w, stmts: map[string]*sql.Stmt{}, changed: make(chan struct{})}, nil
}

// Close closes the database.
func (s *Store) Close() error {
	s.wmu.Lock()
	for _, st := range s.stmts {
		st.Close()
	}
	s.w.Close()
	s.wmu.Unlock()
	return s.db.Close()
}

// Changed returns a channel closed at the next commit, for followers.
func (s *Store) Changed() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.changed
}

func (s *Store) notify() {
	s.mu.Lock()
	close(s.changed)
	s.changed = make(chan struct{})
	s.mu.Unlock()
}

// Offsets returns the next offset to read of every partition indexed so
// far, by topic.
func (s *Store) Offsets(ctx context.Context) (map[string]map[int32]int64, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT topic, part, next FROM offsets`)
	if err != nil {
		return nil, fmt.Errorf("read indexed offsets: %w", err)
	}
	defer rows.Close()
	m := map[string]map[int32]int64{}
	for rows.Next() {
		var (
			t string
			p int32
			o int64
		)
		if err := rows.Scan(&t, &p, &o); err != nil {
			return nil, fmt.Errorf("read indexed offsets: %w", err)
		}
		if m[t] == nil {
			m[t] = map[int32]int64{}
		}
		m[t][p] = o
	}
	return m, rows.Err()
}

// ForgetTopic drops the offsets of a deleted topic, so a topic created
// again under the name is read from its start. Its rows stay until
// retention prunes them.
func (s *Store) ForgetTopic(ctx context.Context, topic string) error {
	if _, err := s.db.ExecContext(ctx, `DELETE FROM offsets WHERE topic = ?`, topic); err != nil {
		return fmt.Errorf("forget offsets of %s: %w", topic, err)
	}
	return nil
}

// tx runs f in one write transaction on the writer's connection.
func (s *Store) tx(ctx context.Context, f func(*sql.Tx) error) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := f(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	return tx.Commit()
}

// execFunc runs a statement of the transaction.
type execFunc func(query string, args ...any) (sql.Result, error)

// preparer returns an execFunc for tx that runs each statement prepared
// once for the store (on the writer's connection, so tx reuses it): a
// batch runs the same few statements thousands of times, and the live
// ingest commits many small batches. Called with wmu held.
func (s *Store) preparer(ctx context.Context, tx *sql.Tx) (execFunc, func()) {
	inTx := map[string]*sql.Stmt{}
	exec := func(q string, args ...any) (sql.Result, error) {
		st, ok := inTx[q]
		if !ok {
			parent, ok := s.stmts[q]
			if !ok {
				var err error
				if parent, err = s.db.PrepareContext(ctx, q); err != nil {
					return nil, err
				}
				s.stmts[q] = parent
			}
			st = tx.StmtContext(ctx, parent)
			inTx[q] = st
		}
		return st.ExecContext(ctx, args...)
	}
	return exec, func() {
		for _, st := range inTx {
			st.Close()
		}
	}
}
