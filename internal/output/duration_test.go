package output

import "testing"

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
