// Command kubectl-persona is the kubectl plugin of persona-operator: `kubectl
// persona members|explain|preview|top`. members and top read Persona and
// PersonaMembership objects through the API server with the caller's
// kubeconfig; explain and preview ask the manager's query endpoint, which
// holds the merged profiles, with the caller's bearer token.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"

	"k8s.io/cli-runtime/pkg/genericiooptions"
)

// Exit codes. A CI job tells "the preview is over a limit" (3) from "the
// persona is invalid" (2) from "something else went wrong" (1).
const (
	exitOK       = 0
	exitError    = 1
	exitInvalid  = 2
	exitExceeded = 3
)

func main() {
	os.Exit(run(os.Args[1:], genericiooptions.IOStreams{In: os.Stdin, Out: os.Stdout, ErrOut: os.Stderr}))
}

// run executes the plugin and returns its exit code.
func run(args []string, streams genericiooptions.IOStreams) int {
	cmd := newRootCommand(streams)
	cmd.SetArgs(args)
	err := cmd.Execute()
	if err == nil {
		return exitOK
	}
	printError(streams.ErrOut, err)
	var ce *codeError
	if errors.As(err, &ce) {
		return ce.code
	}
	return exitError
}

func printError(w io.Writer, err error) {
	fmt.Fprintln(w, "error: "+err.Error())
}

// codeError carries an exit code other than 1.
type codeError struct {
	code int
	err  error
}

func (e *codeError) Error() string { return e.err.Error() }
func (e *codeError) Unwrap() error { return e.err }
