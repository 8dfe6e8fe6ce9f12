package notify

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/emersion/go-maildir"
	"github.com/emersion/go-mbox"
)

// EachMessage calls fn with every message of the mailbox at path not
// processed yet, whatever form the MTA keeps it in:
//
//   - a Maildir (a folder with new/ and cur/, as Postfix and Dovecot
//     deliver): messages in new/ move to cur/, and each is flagged seen (S)
//     once fn returns nil, so the next run skips it;
//   - an mbox file: every message, each run (what it changes is
//     idempotent);
//   - a folder of .eml files: every file, each run.
//
// name identifies the message for counts and logs (a file name, or the
// position in an mbox); it never holds an address. An error from fn stops
// the walk and is returned; a message fn could not read is fn's to count.
func EachMessage(path string, fn func(name string, r io.Reader) error) error {
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("opening the bounce mailbox: %w", err)
	}
	if !fi.IsDir() {
		return eachMbox(path, fn)
	}
	if isMaildir(path) {
		return eachMaildir(maildir.Dir(path), fn)
	}
	// A folder of messages (a Maildir's new/ included) is read whatever
	// the files' names: Postfix and most MDAs write them without ".eml". An
	// mbox in it is read message by message.
	entries, err := os.ReadDir(path)
	if err != nil {
		return fmt.Errorf("reading the bounce folder: %w", err)
	}
	for _, e := range entries { // sorted by name
		if !e.Type().IsRegular() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		if err := eachFile(filepath.Join(path, e.Name()), fn); err != nil {
			return err
		}
	}
	return nil
}

func isMaildir(path string) bool {
	for _, sub := range []string{"new", "cur"} {
		if fi, err := os.Stat(filepath.Join(path, sub)); err != nil || !fi.IsDir() {
			return false
		}
	}
	return true
}

// eachFile reads the file at path as one message, or as an mbox when it
// starts as one ("From " and a space-separated envelope line).
func eachFile(path string, fn func(string, io.Reader) error) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("opening a bounce report: %w", err)
	}
	defer f.Close()
	head := make([]byte, 5)
	if n, _ := io.ReadFull(f, head); string(head[:n]) == "From " {
		return eachMbox(path, fn)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("reading a bounce report: %w", err)
	}
	return fn(filepath.Base(path), f)
}

func eachMaildir(d maildir.Dir, fn func(string, io.Reader) error) error {
	if _, err := d.Unseen(); err != nil {
		return fmt.Errorf("taking new bounce reports from the Maildir: %w", err)
	}
	var todo []*maildir.Message
	err := d.Walk(func(m *maildir.Message) error {
		if !slices.Contains(m.Flags(), maildir.FlagSeen) {
			todo = append(todo, m)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("listing the Maildir's bounce reports: %w", err)
	}
	sort.Slice(todo, func(i, j int) bool { return todo[i].Key() < todo[j].Key() })
	for _, m := range todo {
		rc, err := m.Open()
		if err != nil {
			return fmt.Errorf("opening a bounce report: %w", err)
		}
		err = fn(m.Key(), rc)
		rc.Close()
		if err != nil {
			return err
		}
		if err := m.SetFlags(append(m.Flags(), maildir.FlagSeen)); err != nil {
			return fmt.Errorf("flagging a bounce report seen: %w", err)
		}
	}
	return nil
}

func eachMbox(path string, fn func(string, io.Reader) error) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("opening the bounce mbox: %w", err)
	}
	defer f.Close()
	r := mbox.NewReader(f)
	for i := 1; ; i++ {
		m, err := r.NextMessage()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("reading the bounce mbox at message %d: %w", i, err)
		}
		if err := fn(fmt.Sprintf("%s#%d", filepath.Base(path), i), m); err != nil {
			return err
		}
	}
}
