// Package session is the gateway's session store: which conversation a
// session key points at, the conversation's transcript, the reset policy that
// starts a fresh conversation, and token usage.
//
// # Files (all under Options.Dir, normally <stateDir>/sessions, mode 0700)
//
//   - sessions.json: the index, key → Entry plus the transcript's known length.
//     Replaced atomically (temp file, fsync, rename, directory fsync), 0600.
//   - <sessionId>.jsonl: one transcript per sessionId. The first line is a
//     header {"type":"session","version":1,"sessionId","key","createdAt"} so a
//     lost or corrupt index can be rebuilt from the transcripts alone; then one
//     {"type":"message","id","message":Message} line per Append. Each line is
//     written with a single write call and fsynced before Append returns.
//   - usage.json: token usage per local day and model, replaced atomically.
//   - <sessionId>.jsonl.deleted-<unix>: a deleted session's transcript. Nothing
//     in this package ever erases a transcript that holds messages.
//   - sessions.json.corrupt-<unixms>, usage.json.corrupt-<unixms>: unreadable
//     files set aside (never overwritten) before they are rebuilt.
//
// # Crash behaviour
//
// The transcript is the record; the index and usage.json are caches of it
// that may lag behind after a crash. Open compares each transcript's size with
// the length the index last saw and re-derives the entry (token counters,
// message count, preview, title) from the transcript when they differ; usage
// remembers how far into each current transcript it has counted and counts the
// rest. A line cut short by a crash (no trailing newline, or invalid JSON on
// the last line) is dropped when read and reported; the unterminated bytes are
// cut off before the next append so the file stays valid JSONL. Invalid lines
// in the middle of a transcript are skipped and counted, never fatal.
//
// # Disk faults
//
// When the state directory is full or read-only, Resolve (creating or
// resetting), Append, Patch, Reset and Delete return an error that names the
// operation and matches ErrDiskFull or ErrReadOnly; the in-memory state keeps
// matching what is on disk, and files already written are left intact (a
// partial transcript line from a failed write is truncated away, or dropped on
// the next read if even that fails).
//
// One Store must own a directory: two processes appending to the same
// transcripts would interleave lines and cut each other's "torn" tails.
package session
