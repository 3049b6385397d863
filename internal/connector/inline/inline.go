// Package inline is the connector for records embedded in the DataSource spec.
package inline

import (
	"bytes"
	"context"
	"errors"

	"github.com/usersuccess/persona-operator/internal/connector"
	"github.com/usersuccess/persona-operator/internal/connector/format"
)

// Formats accepted by New.
const (
	CSV    = "CSV"
	NDJSON = "NDJSON"
	JSON   = "JSON" // a JSON array of objects
)

// New returns a source reading data in the given format. An unknown format is
// reported by Fetch as a ConfigError, like every other problem with the spec.
func New(dataFormat string, data []byte) connector.Source {
	return &source{format: dataFormat, data: data}
}

type source struct {
	format string
	data   []byte
}

func (s *source) Fetch(ctx context.Context, visit connector.Visitor) error {
	r := bytes.NewReader(s.data)
	var err error
	switch s.format {
	case CSV:
		err = format.ReadCSV(ctx, r, visit)
	case NDJSON:
		err = format.ReadNDJSON(ctx, r, visit)
	case JSON:
		err = format.ReadJSON(ctx, r, "", visit)
	default:
		return connector.Configf("InvalidFormat", "unknown inline data format %q (want CSV, NDJSON or JSON)", s.format)
	}
	// The data is part of the spec: an invalid document will not fix itself.
	var se *format.SyntaxError
	if errors.As(err, &se) {
		return connector.Configf("InvalidFormat", "inline %s data: %v", s.format, se)
	}
	return err
}
