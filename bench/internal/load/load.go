// Package load is what bench/loadgen reports and bench/run reads.
package load

// Result is what bench/loadgen prints at the end, as one JSON object, and
// what bench/run reads back.
type Result struct {
	Role         string  `json:"role"`                  // "both", "server" or "client"
	Mode         string  `json:"mode"`                  // "max" or "fixed"
	TargetRate   float64 `json:"target_rate,omitempty"` // connections/s asked for (fixed)
	Concurrency  int     `json:"concurrency"`
	Close        string  `json:"close"`
	Payload      int     `json:"payload_bytes"`
	Port         int     `json:"port"`
	PID          int     `json:"pid"`
	Source       string  `json:"source,omitempty"` // the clients' local address (-source)
	Attempted    uint64  `json:"attempted"`
	Completed    uint64  `json:"completed"`
	Failed       uint64  `json:"failed"`
	DurationSec  float64 `json:"duration_s"` // first connect to last close, both ends
	Rate         float64 `json:"rate"`       // completed / duration_s
	Accepted     uint64  `json:"server_accepted"`
	ServerClosed uint64  `json:"server_closed"`
	ServerErrors uint64  `json:"server_errors"`
	// Late counts, in fixed mode, connection starts that were due while every
	// client was still busy (the rate asked for was not reached).
	Late   uint64            `json:"late,omitempty"`
	Errors map[string]uint64 `json:"errors,omitempty"` // client and server errors by kind
	// When bench/run ran the loadgen as separate server and client
	// processes, it sums their counts into one Result and fills these in
	// (not in the loadgen's JSON): the server processes' pids, the client
	// processes' pids, and each client process's pid by its -source
	// address. Without them the server and the clients were all PID.
	ServerPIDs []int          `json:"-"`
	ClientPIDs []int          `json:"-"`
	ClientBy   map[string]int `json:"-"`
}
