package infra

import (
	"math"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

func TestBudgetOffByDefault(t *testing.T) {
	f, _ := deployed(t, defaultStack(t))
	if n := len(f.ofType(typeBudget)); n != 0 {
		t.Errorf("%d budgets without budgetEmail", n)
	}
}

func TestBudget(t *testing.T) {
	s := defaultStack(t)
	s.config["skykoi:budgetEmail"] = "ada@example.com"
	s.config["skykoi:budgetMonthlyUsd"] = "42.5"
	f, _ := deployed(t, s)
	b := f.one(t, typeBudget).Inputs
	for k, want := range map[string]string{
		"name": "skykoi-dev-monthly", "budgetType": "COST", "limitAmount": "42.50",
		"limitUnit": "USD", "timeUnit": "MONTHLY",
	} {
		if got := str(b, k); got != want {
			t.Errorf("budget %s = %q, want %q", k, got, want)
		}
	}
	if _, ok := b["costFilters"]; ok {
		t.Errorf("budget filtered %v; Bedrock spend carries no tag, so the budget must be the account's", b["costFilters"])
	}
	type note struct {
		op, kind, thresholdType string
		threshold               float64
		emails                  []string
	}
	var got []note
	for _, n := range b["notifications"].ArrayValue() {
		o := n.ObjectValue()
		got = append(got, note{o["comparisonOperator"].StringValue(), o["notificationType"].StringValue(),
			o["thresholdType"].StringValue(), o["threshold"].NumberValue(), strs(o["subscriberEmailAddresses"])})
	}
	want := []note{
		{"GREATER_THAN", "ACTUAL", "PERCENTAGE", 80, []string{"ada@example.com"}},
		{"GREATER_THAN", "ACTUAL", "PERCENTAGE", 100, []string{"ada@example.com"}},
		{"GREATER_THAN", "FORECASTED", "PERCENTAGE", 100, []string{"ada@example.com"}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("notifications\n%+v\nwant\n%+v", got, want)
	}
	if got := tagsOf(b)[KoiTagKey]; got != "skykoi-dev" {
		t.Errorf("budget tag %s = %q", KoiTagKey, got)
	}
}

func TestBudgetConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		name    string
		set     map[string]string
		wantErr []string
	}{
		{name: "email alone", set: map[string]string{"skykoi:budgetEmail": "ada@example.com"}, wantErr: []string{
			"skykoi:budgetMonthlyUsd: required with budgetEmail",
		}},
		{name: "amount alone", set: map[string]string{"skykoi:budgetMonthlyUsd": "50"}, wantErr: []string{
			"skykoi:budgetEmail: required with budgetMonthlyUsd",
		}},
		{name: "email with a name", set: map[string]string{"skykoi:budgetEmail": "Ada <ada@example.com>", "skykoi:budgetMonthlyUsd": "50"}, wantErr: []string{
			`skykoi:budgetEmail: want one e-mail address like ada@example.com, got "Ada <ada@example.com>"`,
		}},
		{name: "two emails", set: map[string]string{"skykoi:budgetEmail": "ada@example.com,bob@example.com", "skykoi:budgetMonthlyUsd": "50"}, wantErr: []string{
			`skykoi:budgetEmail: want one e-mail address`,
		}},
		{name: "no domain", set: map[string]string{"skykoi:budgetEmail": "ada@localhost", "skykoi:budgetMonthlyUsd": "50"}, wantErr: []string{
			`skykoi:budgetEmail: want an address at a domain name like ada@example.com, got "ada@localhost"`,
		}},
		{name: "not an address", set: map[string]string{"skykoi:budgetEmail": "ada", "skykoi:budgetMonthlyUsd": "50"}, wantErr: []string{
			`skykoi:budgetEmail: want one e-mail address`,
		}},
		{name: "dollar sign", set: map[string]string{"skykoi:budgetEmail": "ada@example.com", "skykoi:budgetMonthlyUsd": "$50"}, wantErr: []string{
			`skykoi:budgetMonthlyUsd: want a number of US dollars like 50 or 12.50, got "$50"`,
		}},
		{name: "exponent", set: map[string]string{"skykoi:budgetEmail": "ada@example.com", "skykoi:budgetMonthlyUsd": "5e1"}, wantErr: []string{
			`skykoi:budgetMonthlyUsd: want a number of US dollars`,
		}},
		{name: "zero", set: map[string]string{"skykoi:budgetEmail": "ada@example.com", "skykoi:budgetMonthlyUsd": "0"}, wantErr: []string{
			`skykoi:budgetMonthlyUsd: want more than 0 and at most 1000000 US dollars, got 0`,
		}},
		{name: "negative", set: map[string]string{"skykoi:budgetEmail": "ada@example.com", "skykoi:budgetMonthlyUsd": "-5"}, wantErr: []string{
			`skykoi:budgetMonthlyUsd: want more than 0`,
		}},
		{name: "fractions of cents", set: map[string]string{"skykoi:budgetEmail": "ada@example.com", "skykoi:budgetMonthlyUsd": "12.345"}, wantErr: []string{
			`skykoi:budgetMonthlyUsd: want whole cents at most, got 12.345`,
		}},
		{name: "bad amount without email", set: map[string]string{"skykoi:budgetMonthlyUsd": "lots"}, wantErr: []string{
			"skykoi:budgetEmail: required with budgetMonthlyUsd",
			`skykoi:budgetMonthlyUsd: want a number of US dollars`,
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkConfigErrors(t, tc.set, tc.wantErr)
		})
	}
}

// FuzzParseUSD: whatever is accepted is a positive amount in whole cents
// within the bound, and Budgets' two-decimal form of it reads back the same.
func FuzzParseUSD(f *testing.F) {
	for _, s := range []string{"50", "12.50", "0.01", " 7 ", "1000000", "1000000.01", "0", "-1", "$5", "5e2", "NaN", "Inf", "0x10", "1_000", "12.345", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, err := parseUSD(s)
		if err != nil {
			if !strings.Contains(err.Error(), "want") {
				t.Errorf("%q: error %q does not say what is wanted", s, err)
			}
			return
		}
		if math.IsNaN(v) || v <= 0 || v > maxBudgetUSD {
			t.Fatalf("%q accepted as %v", s, v)
		}
		back, err := strconv.ParseFloat(strconv.FormatFloat(v, 'f', 2, 64), 64)
		if err != nil || back != v {
			t.Fatalf("%q: %v is sent as %v", s, v, back)
		}
	})
}

// FuzzCheckEmail: an accepted address is one bare address at a dotted
// domain, with nothing a mail header could be split on.
func FuzzCheckEmail(f *testing.F) {
	for _, s := range []string{"ada@example.com", "a.b+c@mail.example.org", "Ada <ada@example.com>", "ada@localhost",
		"ada", "ada@example.com,bob@example.com", "ada@[127.0.0.1]", "\"a b\"@example.com", "ada@example.com\r\nBcc: x@y.z", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if checkEmail(s) != nil {
			return
		}
		if strings.ContainsAny(s, "\r\n<>,") || strings.Count(s, "@") < 1 {
			t.Fatalf("%q accepted", s)
		}
		_, domain, _ := strings.Cut(s[strings.LastIndex(s, "@"):], "@")
		if !strings.Contains(domain, ".") {
			t.Fatalf("%q accepted without a dotted domain", s)
		}
	})
}
