// Package progress shows the progress of long streaming jobs, such as a
// manufacturing batch being submitted, on a terminal or in a log.
//
// On a terminal it redraws one line in place a few times a second; anywhere
// else (a pipe, a file, CI logs) it prints a plain line every few seconds,
// so logs stay readable. Counting is cheap and safe from many goroutines.
package progress
