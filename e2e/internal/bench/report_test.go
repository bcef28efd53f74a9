package bench

import (
	"errors"
	"strings"
	"testing"
)

func TestReportAdd(t *testing.T) {
	var rep Report
	if err := rep.Add(
		Row{Name: RowProduce, Value: 1000, Unit: UnitEventsPerSecond},
		Row{Name: RowReplyP50, Value: 0.5, Unit: UnitMilliseconds},
	); err != nil {
		t.Fatal(err)
	}
	if err := rep.Add(
		Row{Name: "gateway p50", Value: 2, Unit: UnitMilliseconds, Limit: RowReplyP50, Count: 100},
		Row{Name: "gateway rate", Value: 1500, Unit: UnitRequestsPerSecond, NoLimit: true, Count: 100},
	); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		row  Row
		says string
	}{
		{Row{Value: 1, Unit: UnitMilliseconds}, "no name"},
		{Row{Name: RowProduce, Value: 1, Unit: UnitEventsPerSecond}, "already"},
		{Row{Name: "fnbox", Value: 1, Unit: UnitEventsPerSecond, Limit: RowPipeline}, "not in the report"},
		{Row{Name: "fnbox", Value: 1, Unit: UnitMilliseconds, Limit: RowProduce}, "is in ms but"},
		{Row{Name: "gateway p99", Value: 1, Unit: UnitMilliseconds, Limit: "gateway p50"}, "not a raw limit"},
		{Row{Name: "gateway p99", Value: 1, Unit: UnitRequestsPerSecond, Limit: "gateway rate"}, "not a raw limit"},
		{Row{Name: "timer lag", Value: 1, Unit: UnitMilliseconds, Limit: RowReplyP50, NoLimit: true}, "set one or the other"},
	} {
		err := rep.Add(c.row)
		if !errors.Is(err, ErrBadRow) || !strings.Contains(err.Error(), c.says) {
			t.Errorf("Add(%+v) = %v, want ErrBadRow saying %q", c.row, err, c.says)
		}
	}
	if n := len(rep.Rows()); n != 4 {
		t.Errorf("%d rows after rejected adds, want 4", n)
	}

	gw, _ := rep.Row("gateway p50")
	if got := rep.Ratio(gw); got != 4 {
		t.Errorf("ratio = %v, want 4 (2ms ÷ 0.5ms)", got)
	}
	rep.Note("**gateway p50**: what it measures.")
	rep.Note("**gateway p50**: what it measures.")
	var md strings.Builder
	if err := rep.WriteMarkdown(&md); err != nil {
		t.Fatal(err)
	}
	if want := "| gateway p50 | 2.00 | ms | 100 | 0.500 (" + RowReplyP50 + ") | 4.00 |"; !strings.Contains(md.String(), want) {
		t.Errorf("markdown lacks %q:\n%s", want, md.String())
	}
	if want := "| gateway rate | 1500 | requests/s | 100 | — | — |"; !strings.Contains(md.String(), want) {
		t.Errorf("markdown lacks %q:\n%s", want, md.String())
	}
	if want := "| produce | 1000 | events/s | 0 | 1000 | 1.00 |"; !strings.Contains(md.String(), want) {
		t.Errorf("markdown lacks %q:\n%s", want, md.String())
	}
	if n := strings.Count(md.String(), "- **gateway p50**: what it measures.\n"); n != 1 {
		t.Errorf("note printed %d times, want once:\n%s", n, md.String())
	}
}
