package agent

import (
	"strings"
	"testing"
	"time"
)

func TestCoalescer(t *testing.T) {
	type step struct {
		advance time.Duration
		add     string
		flush   bool
	}
	tests := []struct {
		name  string
		steps []step
		want  []string
	}{
		{"first delta goes out at once", []step{{add: "a"}}, []string{"a"}},
		{"deltas inside the window are joined on the trailing edge",
			[]step{{add: "a"}, {advance: 10 * time.Millisecond, add: "b"}, {advance: 10 * time.Millisecond, add: "c"}, {advance: 40 * time.Millisecond}},
			[]string{"a", "bc"}},
		{"after a quiet window the next delta leads again",
			[]step{{add: "a"}, {advance: 200 * time.Millisecond, add: "b"}},
			[]string{"a", "b"}},
		{"flush sends pending text before the window ends",
			[]step{{add: "a"}, {advance: 5 * time.Millisecond, add: "b"}, {flush: true}, {advance: 100 * time.Millisecond}},
			[]string{"a", "b"}},
		{"flush with nothing pending sends nothing", []step{{add: "a"}, {flush: true}}, []string{"a"}},
		{"1000 deltas in 1 s become about 20 emissions",
			func() []step {
				var s []step
				for i := 0; i < 1000; i++ {
					s = append(s, step{advance: time.Millisecond, add: "x"})
				}
				return append(s, step{flush: true})
			}(),
			nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := newFakeClock()
			var got []string
			c := newCoalescer(50*time.Millisecond, clock, func(d string) { got = append(got, d) })
			total := ""
			for _, s := range tt.steps {
				if s.advance > 0 {
					clock.Advance(s.advance)
				}
				if s.add != "" {
					c.Add(s.add)
					total += s.add
				}
				if s.flush {
					c.Flush()
				}
			}
			if tt.want != nil {
				if strings.Join(got, "|") != strings.Join(tt.want, "|") {
					t.Errorf("emitted %q, want %q", got, tt.want)
				}
				return
			}
			if strings.Join(got, "") != total {
				t.Error("text lost or reordered")
			}
			if len(got) < 19 || len(got) > 22 {
				t.Errorf("%d emissions for 1000 deltas over 1 s at 50 ms", len(got))
			}
		})
	}
}
