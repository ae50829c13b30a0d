package infra

import (
	"fmt"
	"math"
	"net/mail"
	"strconv"
	"strings"

	"github.com/pulumi/pulumi-aws/sdk/v7/go/aws/budgets"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

// maxBudgetUSD is a sanity bound: a monthly cap above it is a typo for a
// personal agent, not a plan.
const maxBudgetUSD = 1_000_000

// BudgetArgs are an optional AWS Budgets alarm. It is off (no budget at
// all) while Email is empty.
type BudgetArgs struct {
	// Email receives the alerts; AWS sends them without confirmation.
	Email string
	// MonthlyUSD is the month's budgeted cost in US dollars, cents at most.
	MonthlyUSD float64
}

func (a BudgetArgs) on() bool { return a.Email != "" }

// budgetThresholds are the alerts, in percent of MonthlyUSD: early
// warning, the cap itself, and AWS's forecast that the month will pass it.
var budgetThresholds = []struct {
	percent int
	kind    string
}{
	{80, "ACTUAL"},
	{100, "ACTUAL"},
	{100, "FORECASTED"},
}

func (a BudgetArgs) problems() []problem {
	var ps []problem
	bad := func(key, format string, args ...any) {
		ps = append(ps, problem{key, fmt.Sprintf(format, args...)})
	}
	usdSet := a.MonthlyUSD != 0
	switch {
	case a.Email == "" && usdSet:
		bad(KeyBudgetEmail, "required with %s: the address the alerts go to", KeyBudgetMonthlyUSD)
	case a.Email != "":
		if err := checkEmail(a.Email); err != nil {
			bad(KeyBudgetEmail, "%v", err)
		}
		if !usdSet {
			bad(KeyBudgetMonthlyUSD, "required with %s: the month's budget in US dollars, like 50", KeyBudgetEmail)
		}
	}
	if usdSet {
		if err := checkUSD(a.MonthlyUSD); err != nil {
			bad(KeyBudgetMonthlyUSD, "%v", err)
		}
	}
	return ps
}

// checkEmail accepts one bare address: what Budgets stores and mails.
func checkEmail(s string) error {
	addr, err := mail.ParseAddress(s)
	if err != nil || addr.Address != s || addr.Name != "" {
		return fmt.Errorf("want one e-mail address like ada@example.com, got %q", s)
	}
	_, domain, _ := strings.Cut(s, "@")
	if !strings.Contains(domain, ".") || strings.HasPrefix(domain, "[") {
		return fmt.Errorf("want an address at a domain name like ada@example.com, got %q", s)
	}
	return nil
}

func checkUSD(v float64) error {
	switch {
	case math.IsNaN(v) || v <= 0 || v > maxBudgetUSD:
		return fmt.Errorf("want more than 0 and at most %d US dollars, got %s", maxBudgetUSD, strconv.FormatFloat(v, 'f', -1, 64))
	case math.Abs(v*100-math.Round(v*100)) > 1e-6:
		return fmt.Errorf("want whole cents at most, got %s", strconv.FormatFloat(v, 'f', -1, 64))
	}
	return nil
}

// parseUSD reads a dollar amount from the stack config: digits with at
// most two decimals, no currency sign or thousands separator.
func parseUSD(s string) (float64, error) {
	s = strings.TrimSpace(s)
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || strings.ContainsAny(s, "eEinfINF+_xX") {
		return 0, fmt.Errorf("want a number of US dollars like 50 or 12.50, got %q", s)
	}
	if err := checkUSD(v); err != nil {
		return 0, err
	}
	return v, nil
}

// budget makes the monthly cost budget and its alerts. It is account-wide
// on purpose: Bedrock, usually most of a Koi's cost, is billed to the
// account and carries no resource tag a filter could match, and a tag
// filter would also need the tag activated for cost allocation first.
func (b *koiBuilder) budget() error {
	a := b.args.Budget
	if !a.on() {
		return nil
	}
	var notes budgets.BudgetNotificationArray
	for _, t := range budgetThresholds {
		notes = append(notes, &budgets.BudgetNotificationArgs{
			ComparisonOperator:       pulumi.String("GREATER_THAN"),
			Threshold:                pulumi.Float64(float64(t.percent)),
			ThresholdType:            pulumi.String("PERCENTAGE"),
			NotificationType:         pulumi.String(t.kind),
			SubscriberEmailAddresses: pulumi.ToStringArray([]string{a.Email}),
		})
	}
	if _, err := budgets.NewBudget(b.ctx, b.name+"-monthly", &budgets.BudgetArgs{
		Name:          pulumi.String(b.name + "-monthly"),
		BudgetType:    pulumi.String("COST"),
		LimitAmount:   pulumi.String(strconv.FormatFloat(a.MonthlyUSD, 'f', 2, 64)),
		LimitUnit:     pulumi.String("USD"),
		TimeUnit:      pulumi.String("MONTHLY"),
		Notifications: notes,
		Tags:          b.tags("budget"),
	}, b.parent); err != nil {
		return fmt.Errorf("creating the AWS Budgets alarm: %w", err)
	}
	return nil
}
