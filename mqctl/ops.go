package main

// Helpers of the commands that change many things at once (clear, and the
// dead-letter requeue and delete of all): asking first, and progress.

import (
	"bufio"
	"fmt"
	"io"
	"strings"
)

// confirm asks question on stderr and reads the answer from stdin: only
// "y" or "yes" agree; anything else, or the end of the input, refuses.
// yes (the --yes flag) agrees without asking.
func (a *app) confirm(yes bool, question string) (bool, error) {
	if yes {
		return true, nil
	}
	fmt.Fprintf(a.stderr, "%s [y/N] ", question)
	line, err := bufio.NewReader(a.stdin).ReadString('\n')
	if err != nil && err != io.EOF {
		return false, fmt.Errorf("reading the answer: %w", err)
	}
	if !isTerminal(a.stdin) || err == io.EOF {
		// No echo of the answer's newline ends the question's line.
		fmt.Fprintln(a.stderr)
	}
	switch strings.ToLower(strings.TrimSpace(line)) {
	case "y", "yes":
		return true, nil
	}
	return false, nil
}

// notConfirmed is the failure of an operation the user did not confirm.
func notConfirmed() error {
	return &exitError{code: exitFailure, err: fmt.Errorf("not confirmed: nothing changed (--yes skips the question)")}
}

// progress reports the steps of a long operation on stderr: on a terminal
// one line rewritten in place, elsewhere a line per step, so that a log
// shows how far it went.
type progress struct {
	w     io.Writer
	tty   bool
	verb  string
	total int
	done  int
	// batched: set reported, and its line still waits for its end.
	batched bool
}

// newProgress starts the report of total steps, each one verb-ed. A single
// step is not reported.
func (a *app) newProgress(verb string, total int) *progress {
	return &progress{w: a.stderr, tty: isTerminal(a.stderr), verb: verb, total: total}
}

// step reports that one more step, on item, is done.
func (p *progress) step(item string) {
	p.done++
	if p.total < 2 {
		return
	}
	if p.tty {
		fmt.Fprintf(p.w, "\r\x1b[K%s %d/%d: %s", p.verb, p.done, p.total, item)
		if p.done == p.total {
			fmt.Fprintln(p.w)
		}
		return
	}
	fmt.Fprintf(p.w, "%s %d/%d: %s\n", p.verb, p.done, p.total, item)
}

// set reports that done steps are done, for operations that report in
// batches (a requeue of all dead letters); detail, if any, follows. done
// may pass total when more came meanwhile.
func (p *progress) set(done int, detail string) {
	p.done = done
	if p.total < 2 {
		return
	}
	p.batched = true
	line := fmt.Sprintf("%s %d/%d", p.verb, p.done, p.total)
	if detail != "" {
		line += " (" + detail + ")"
	}
	if p.tty {
		fmt.Fprintf(p.w, "\r\x1b[K%s", line)
		return
	}
	fmt.Fprintln(p.w, line)
}

// end finishes the report, after the last step or an error.
func (p *progress) end() {
	if p.tty && p.total >= 2 && p.done > 0 && (p.done < p.total || p.batched) {
		fmt.Fprintln(p.w)
	}
}
