package format

import (
	"bufio"
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/usersuccess/persona-operator/internal/connector"
)

// ReadCSV reads a CSV document whose first row is the header and calls visit for
// each data row, with the header as Fields and the cells as string Values. A row
// that is ragged or badly quoted is a record error; reading goes on.
func ReadCSV(ctx context.Context, r io.Reader, visit connector.Visitor) error {
	cr := csv.NewReader(skipBOM(r))
	cr.FieldsPerRecord = -1 // ragged rows are record errors, checked here
	// Safe: encoding/csv allocates fresh strings per row and reuses only the
	// slice, whose cells are copied into each record's own Values.
	cr.ReuseRecord = true
	header, err := readHeader(cr)
	if err != nil {
		return err
	}
	rows := csvRows{cr: cr, header: header, visit: visit}
	done := ctx.Done()
	for num := int64(1); ; num++ {
		if err := canceled(ctx, done); err != nil {
			return err
		}
		row, err := cr.Read()
		if err == io.EOF {
			return nil
		}
		if err = rows.visitRow(num, row, err); err != nil {
			return err
		}
	}
}

// csvRows turns the data rows of one CSV document into records.
type csvRows struct {
	cr     *csv.Reader
	header []string
	caches columnCaches
	visit  connector.Visitor
}

// visitRow hands one row (or its parse error) to visit.
func (c *csvRows) visitRow(num int64, row []string, err error) error {
	var pe *csv.ParseError
	switch {
	case errors.As(err, &pe):
		// The rejection names the record number (data rows from 1); a line
		// number beside it would count the header and quoted line breaks.
		return visitErr(c.visit, num, fmt.Sprintf("column %d: %v", pe.Column, pe.Err))
	case err != nil:
		return fmt.Errorf("reading CSV row %d: %w", num, err)
	case len(row) != len(c.header):
		return visitErr(c.visit, num, fmt.Sprintf("row has %d %s, header has %d", len(row), plural(len(row), "field", "fields"), len(c.header)))
	}
	vals := make([]any, len(row))
	for i, s := range row {
		cache := c.caches.at(i)
		v, ok := cache.getString(s)
		if !ok {
			v = s
			cache.put(s, v)
		}
		vals[i] = v
	}
	return c.visit(connector.Record{Num: num, Fields: c.header, Values: vals}, nil)
}

// readHeader reads and checks the header row: names must be non-empty and unique.
func readHeader(cr *csv.Reader) ([]string, error) {
	row, err := cr.Read()
	var pe *csv.ParseError
	switch {
	case err == io.EOF:
		return nil, connector.Configf("InvalidFormat", "CSV input is empty: the first row must be a header")
	case errors.As(err, &pe):
		return nil, connector.Configf("InvalidFormat", "CSV header (line %d, column %d): %v", pe.Line, pe.Column, pe.Err)
	case err != nil:
		return nil, fmt.Errorf("reading CSV header: %w", err)
	}
	header := slices.Clone(row) // the reader reuses row's backing array
	seen := make(map[string]int, len(header))
	for i, name := range header {
		if name == "" {
			return nil, connector.Configf("InvalidFormat", "CSV header: column %d has an empty name", i+1)
		}
		if j, dup := seen[name]; dup {
			return nil, connector.Configf("InvalidFormat", "CSV header: column name %q appears in columns %d and %d", name, j+1, i+1)
		}
		seen[name] = i
	}
	return header, nil
}

// skipBOM drops a leading UTF-8 byte order mark, which spreadsheet tools write.
func skipBOM(r io.Reader) *bufio.Reader {
	br := bufio.NewReaderSize(r, bufSize)
	if b, _ := br.Peek(len(bom)); bytes.Equal(b, bom) {
		_, _ = br.Discard(len(bom))
	}
	return br
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
