package mfg

import (
	"bufio"
	"bytes"
	"errors"
	"io"
)

// errLineTooLong is returned by lineReader.next for a line over the limit;
// the line has been consumed, so reading can go on with the next one.
var errLineTooLong = errors.New("line too long")

// utf8BOM is what spreadsheet programs put in front of exported CSV.
var utf8BOM = []byte{0xEF, 0xBB, 0xBF}

// lineReader yields the physical lines of a manifest, each at most max
// bytes, without their line terminator, and numbers them. It can be told to
// read again lines it already returned, which is how a CSV record broken by
// a stray quote is re-read line by line instead of swallowing the rest of the
// manifest. Its memory is bounded by max, never by the manifest's size.
type lineReader struct {
	br     *bufio.Reader
	max    int
	line   int          // number of the last line returned
	replay []replayLine // lines to return again before reading br
}

// replayLine is a line to be read again; tooLong stands for a line that was
// over the limit and so was not kept.
type replayLine struct {
	b       []byte
	tooLong bool
}

func newLineReader(r io.Reader, max int) *lineReader {
	// Room for the longest allowed line plus "\r\n", so that ReadSlice
	// returns every allowed line whole from the buffer, without copying.
	return &lineReader{br: bufio.NewReaderSize(r, max+2), max: max}
}

// next returns the next line, valid until the following call. At the end it
// returns io.EOF; for an over-long line errLineTooLong; other errors come
// from the underlying reader.
func (lr *lineReader) next() ([]byte, error) {
	if len(lr.replay) > 0 {
		l := lr.replay[0]
		lr.replay = lr.replay[1:]
		lr.line++
		if l.tooLong {
			return nil, errLineTooLong
		}
		return l.b, nil
	}
	line, err := lr.br.ReadSlice('\n')
	switch {
	case err == nil:
		line = line[:len(line)-1]
	case errors.Is(err, bufio.ErrBufferFull):
		lr.line++
		if err := lr.discardLine(); err != nil {
			return nil, err
		}
		return nil, errLineTooLong
	case err == io.EOF && len(line) > 0:
		// The last line has no terminator.
	default:
		return nil, err
	}
	lr.line++
	line = bytes.TrimSuffix(line, []byte{'\r'})
	if lr.line == 1 {
		line = bytes.TrimPrefix(line, utf8BOM)
	}
	if len(line) > lr.max {
		return nil, errLineTooLong
	}
	return line, nil
}

// discardLine skips the rest of an over-long line without holding it.
func (lr *lineReader) discardLine() error {
	for {
		_, err := lr.br.ReadSlice('\n')
		switch {
		case err == nil || err == io.EOF:
			return nil
		case !errors.Is(err, bufio.ErrBufferFull):
			return err
		}
	}
}

// rewind makes the reader return lines again, starting after line after:
// lines is what was read since, in order. The bytes are copied, so callers
// may reuse theirs.
func (lr *lineReader) rewind(after int, lines []replayLine) {
	size := 0
	for _, l := range lines {
		size += len(l.b)
	}
	buf := make([]byte, 0, size)
	again := make([]replayLine, 0, len(lines)+len(lr.replay))
	for _, l := range lines {
		start := len(buf)
		buf = append(buf, l.b...)
		again = append(again, replayLine{b: buf[start:len(buf):len(buf)], tooLong: l.tooLong})
	}
	lr.replay = append(again, lr.replay...)
	lr.line = after
}
