package output

import (
	"math"
	"math/rand/v2"
	"strconv"
	"testing"
	"time"
)

func TestAppendDurationBoundaries(t *testing.T) {
	for ns, want := range map[uint64]string{999: "999ns", 1000: "1.00µs", 9999: "10.0µs", 99950: "100µs", 999500: "1.00ms", 999999999: "1.00s", 1234000000000: "1234s", 850: "850ns", 85000: "85.0µs", 1234000: "1.23ms", 12300000000: "12.3s", 123000000: "123ms"} {
		if got := string(AppendDuration(nil, ns)); got != want {
			t.Errorf("%d: %s want %s", ns, got, want)
		}
	}
}

func TestAppendByteRate(t *testing.T) {
	for in, want := range map[uint64]string{
		0: "0B/s", 850: "850B/s", 999: "999B/s", 1000: "1.00kB/s", 3400: "3.40kB/s", 99_960: "100kB/s",
		1_000_000: "1.00MB/s", 12_345_678: "12.3MB/s", 1_000_000_000: "1.00GB/s",
	} {
		if got := string(AppendByteRate(nil, in)); got != want {
			t.Errorf("AppendByteRate(%d) = %q, want %q", in, got, want)
		}
	}
}

// appendFixed must write what strconv.AppendFloat writes: the values
// appendSI gives it, around every rounding boundary, and random ones.
func TestAppendFixedMatchesAppendFloat(t *testing.T) {
	check := func(v float64, prec int) {
		t.Helper()
		want := string(strconv.AppendFloat(nil, v, 'f', prec, 64))
		if got := string(appendFixed(nil, v, prec)); got != want {
			t.Fatalf("appendFixed(%v, %d) = %q, want %q", v, prec, got, want)
		}
	}
	for _, v := range []float64{0, 0.005, 0.0049999, 0.995, 1.005, 1.015, 1.025, 2.675, 9.995, 99.95, 999.5, 0.5, 1.5, 2.5, 1e14, 1e15, 1e300, math.MaxUint64} {
		for prec := 0; prec <= 2; prec++ {
			check(v, prec)
		}
	}
	// Every integer up to a million, scaled as appendSI scales them.
	for n := uint64(0); n < 1_000_000; n++ {
		v := float64(n)
		check(v, 0)
		check(v/1000, 2)
		check(v/1000, 1)
		check(v/1000/1000, 2)
		check(v/1000/1000/1000, 1)
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 1_000_000 {
		n := r.Uint64() >> r.IntN(64)
		v := float64(n)
		for v >= 999.5 {
			v /= 1000
		}
		for prec := 0; prec <= 2; prec++ {
			check(v, prec)
		}
	}
}

// timeCache must write what time.AppendFormat writes, in any zone, for
// times in and across seconds, forwards and back, and around a DST change.
func TestTimeCacheMatchesAppendFormat(t *testing.T) {
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Skipf("no zone data: %v", err)
	}
	var c timeCache
	r := rand.New(rand.NewPCG(3, 4))
	dst := time.Date(2026, 3, 8, 1, 59, 58, 0, ny).UnixNano() // 2:00 EST -> 3:00 EDT
	for _, loc := range []*time.Location{time.UTC, time.Local, ny, time.FixedZone("", 5*3600+30*60)} {
		for _, base := range []int64{0, dst, 1_780_000_000_123_456_789, -1_500_000_000} {
			ns := base
			for range 20000 {
				ns += r.Int64N(3_000_000_000) - 1_000_000_000
				tm := time.Unix(0, ns).In(loc)
				want := tm.AppendFormat(nil, timeLayout)
				if got := c.appendTime(nil, tm); string(got) != string(want) {
					t.Fatalf("%v: %s, want %s", tm, got, want)
				}
			}
		}
	}
}
