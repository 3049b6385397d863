package conditions

import (
	"encoding/json"
	"fmt"
)

// StatusPatch builds the JSON merge patch that makes the stored status equal to
// after's status: every field after holds is sent (a diff of before and after
// leaves out a zero count that both hold, so a new object's `members: 0` would
// never be stored and kubectl's column would show blank), and every field
// before holds that after dropped is sent as null. Lists are replaced whole,
// as a merge patch does. resourceVersion, when set, makes the patch an
// optimistic lock: the API server rejects it if the object changed since.
//
// before and after are the whole objects (anything that marshals to a JSON
// object with a "status" key).
func StatusPatch(before, after any, resourceVersion string) ([]byte, error) {
	b, err := statusOf(before)
	if err != nil {
		return nil, err
	}
	a, err := statusOf(after)
	if err != nil {
		return nil, err
	}
	body := map[string]any{"status": replace(b, a)}
	if resourceVersion != "" {
		body["metadata"] = map[string]any{"resourceVersion": resourceVersion}
	}
	return json.Marshal(body)
}

func statusOf(obj any) (map[string]any, error) {
	raw, err := json.Marshal(obj)
	if err != nil {
		return nil, err
	}
	var m struct {
		Status map[string]any `json:"status"`
	}
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("status of %T: %w", obj, err)
	}
	return m.Status, nil
}

// replace is after, plus a null for every key of before that after lacks, in
// nested objects too.
func replace(before, after map[string]any) map[string]any {
	out := make(map[string]any, len(after))
	for k, v := range after {
		out[k] = v
		bm, bok := before[k].(map[string]any)
		am, aok := v.(map[string]any)
		if bok && aok {
			out[k] = replace(bm, am)
		}
	}
	for k := range before {
		if _, ok := after[k]; !ok {
			out[k] = nil
		}
	}
	return out
}
