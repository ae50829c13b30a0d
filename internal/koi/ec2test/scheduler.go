package ec2test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

// EventBridge Scheduler, rest-json as aws-sdk-go-v2/service/scheduler
// speaks it: CreateSchedule (POST /schedules/{Name}), UpdateSchedule (PUT),
// GetSchedule (GET), DeleteSchedule (DELETE) and ListSchedules (GET
// /schedules). Errors carry their code in X-Amzn-ErrorType and a JSON
// {"Message"} body. Only the "default" schedule group exists.
//
// One-time schedules (at(...)) fire on FireDue, or by themselves with
// Options.FireOnTime. A firing whose target is EC2 StartInstances through
// the universal target starts the instances in the server's EC2 state, but
// only when its role was allowed with AllowRole, as IAM would refuse a
// role without ec2:StartInstances.

// StartInstancesTarget is the universal target ARN of EC2 StartInstances.
const StartInstancesTarget = "arn:aws:scheduler:::aws-sdk:ec2:startInstances"

// Schedule is a stored schedule, as a test inspects it.
type Schedule struct {
	Name, Group, ARN string
	Expression       string
	Timezone         string
	// At is the instant of an at(...) expression in its time zone; zero
	// for rate and cron expressions.
	At                    time.Time
	TargetARN, RoleARN    string
	Input                 string
	ActionAfterCompletion string
	State                 string
	FlexibleMode          string
	Description           string
	Created, Modified     time.Time
	// Fired says the one-time schedule has run.
	Fired bool
}

// Firing is one run of a schedule.
type Firing struct {
	Schedule string // group/name
	At       time.Time
	// Started are the instances a StartInstances target started.
	Started []string
	// Err says why the invocation failed; empty when it succeeded.
	Err string
}

type schedule struct {
	Schedule
}

type flexibleWindowJSON struct {
	Mode                   string `json:"Mode"`
	MaximumWindowInMinutes *int   `json:"MaximumWindowInMinutes,omitempty"`
}

type targetJSON struct {
	Arn     string `json:"Arn"`
	RoleArn string `json:"RoleArn,omitempty"`
	Input   string `json:"Input,omitempty"`
}

type scheduleInputJSON struct {
	ActionAfterCompletion      string              `json:"ActionAfterCompletion"`
	ClientToken                string              `json:"ClientToken"`
	Description                string              `json:"Description"`
	FlexibleTimeWindow         *flexibleWindowJSON `json:"FlexibleTimeWindow"`
	GroupName                  string              `json:"GroupName"`
	ScheduleExpression         string              `json:"ScheduleExpression"`
	ScheduleExpressionTimezone string              `json:"ScheduleExpressionTimezone"`
	State                      string              `json:"State"`
	Target                     *targetJSON         `json:"Target"`
}

// AllowRole registers a scheduler execution role that may start instances
// (one the test's IAM would have granted ec2:StartInstances).
func (s *Server) AllowRole(roleARN string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.roles[roleARN] = true
}

// Schedules lists the stored schedules by group and name.
func (s *Server) Schedules() []Schedule {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Schedule, 0, len(s.schedules))
	for _, sc := range s.schedules {
		out = append(out, sc.Schedule)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Group+"/"+out[i].Name < out[j].Group+"/"+out[j].Name })
	return out
}

// ScheduleNamed returns one schedule of the default group.
func (s *Server) ScheduleNamed(name string) (Schedule, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sc, ok := s.schedules["default/"+name]
	if !ok {
		return Schedule{}, false
	}
	return sc.Schedule, true
}

// Fired returns every firing so far, in order.
func (s *Server) Fired() []Firing {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Firing(nil), s.fired...)
}

// FireDue runs every enabled one-time schedule whose time is not after
// now and has not run yet, and returns those firings.
func (s *Server) FireDue(now time.Time) []Firing {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.fireDueLocked(now)
}

func (s *Server) fireDueLocked(now time.Time) []Firing {
	var due []*schedule
	for _, sc := range s.schedules {
		if sc.State == "ENABLED" && !sc.At.IsZero() && !sc.Fired && !sc.At.After(now) {
			due = append(due, sc)
		}
	}
	sort.Slice(due, func(i, j int) bool { return due[i].At.Before(due[j].At) })
	var out []Firing
	for _, sc := range due {
		f := Firing{Schedule: sc.Group + "/" + sc.Name, At: now}
		f.Started, f.Err = s.invokeLocked(sc.Schedule)
		sc.Fired = true
		if sc.ActionAfterCompletion == "DELETE" {
			delete(s.schedules, sc.Group+"/"+sc.Name)
		}
		s.fired = append(s.fired, f)
		out = append(out, f)
	}
	return out
}

// invokeLocked runs a schedule's target as Scheduler would, with its role.
func (s *Server) invokeLocked(sc Schedule) ([]string, string) {
	if sc.TargetARN != StartInstancesTarget {
		return nil, fmt.Sprintf("ec2test: the stand-in cannot invoke target %s", sc.TargetARN)
	}
	if !s.roles[sc.RoleARN] {
		return nil, fmt.Sprintf("AccessDenied: role %s is not allowed ec2:StartInstances (register it with AllowRole)", sc.RoleARN)
	}
	var in struct {
		InstanceIds []string `json:"InstanceIds"`
	}
	if err := json.Unmarshal([]byte(sc.Input), &in); err != nil || len(in.InstanceIds) == 0 {
		return nil, "MissingParameter: the input has no InstanceIds"
	}
	found, aerr := s.lookup(in.InstanceIds)
	if aerr != nil {
		return nil, aerr.code + ": " + aerr.message
	}
	var started []string
	for _, inst := range found {
		switch inst.State {
		case Stopped:
			inst.setState(Pending)
			started = append(started, inst.ID)
		case Pending, Running:
		default:
			return started, fmt.Sprintf("IncorrectInstanceState: the instance '%s' is not in a state from which it can be started", inst.ID)
		}
	}
	return started, ""
}

// armLocked sets the real-time timer to the next one-time schedule, when
// Options.FireOnTime is on.
func (s *Server) armLocked() {
	if !s.o.FireOnTime || s.closed {
		return
	}
	var next time.Time
	for _, sc := range s.schedules {
		if sc.State == "ENABLED" && !sc.At.IsZero() && !sc.Fired && (next.IsZero() || sc.At.Before(next)) {
			next = sc.At
		}
	}
	if s.fireTimer != nil {
		s.fireTimer.Stop()
		s.fireTimer = nil
	}
	if next.IsZero() {
		return
	}
	s.fireTimer = time.AfterFunc(time.Until(next), func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.fireDueLocked(time.Now())
		s.armLocked()
	})
}

var (
	scheduleNamePattern = regexp.MustCompile(`^[0-9a-zA-Z_.-]{1,64}$`)
	atPattern           = regexp.MustCompile(`^at\((\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})\)$`)
	ratePattern         = regexp.MustCompile(`^rate\(([1-9]\d*) (minute|minutes|hour|hours|day|days)\)$`)
	cronPattern         = regexp.MustCompile(`^cron\(\S+ \S+ \S+ \S+ \S+ \S+\)$`)
	roleARNPattern      = regexp.MustCompile(`^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]{1,512}$`)
	universalPattern    = regexp.MustCompile(`^arn:aws[a-z-]*:scheduler:::aws-sdk:[a-z0-9]+:[a-zA-Z0-9]+$`)
)

// ParseAt reads an at(yyyy-mm-ddThh:mm:ss) expression in a time zone (UTC
// when empty), the way Scheduler does.
func ParseAt(expr, timezone string) (time.Time, error) {
	m := atPattern.FindStringSubmatch(expr)
	if m == nil {
		return time.Time{}, fmt.Errorf("%q is not at(yyyy-mm-ddThh:mm:ss)", expr)
	}
	loc := time.UTC
	if timezone != "" {
		l, err := time.LoadLocation(timezone)
		if err != nil {
			return time.Time{}, fmt.Errorf("unknown time zone %q", timezone)
		}
		loc = l
	}
	t, err := time.ParseInLocation("2006-01-02T15:04:05", m[1], loc)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is not a valid time: %w", m[1], err)
	}
	return t, nil
}

type schedError struct {
	status        int
	code, message string
}

func validation(format string, args ...any) *schedError {
	return &schedError{http.StatusBadRequest, "ValidationException", fmt.Sprintf(format, args...)}
}

func writeJSONError(w http.ResponseWriter, status int, code, msg, reqID string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Amzn-ErrorType", code)
	w.Header().Set("X-Amzn-RequestId", reqID)
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"Message": msg})
}

func (s *Server) serveScheduler(w http.ResponseWriter, r *http.Request, body []byte) {
	reqID := s.requestID()
	call := Call{Service: "scheduler", Method: r.Method, Path: r.URL.Path,
		Region: credentialRegion(r.Header.Get("Authorization"))}
	name, isOne := strings.CutPrefix(r.URL.Path, "/schedules/")
	switch {
	case isOne && r.Method == http.MethodPost:
		call.Action = "CreateSchedule"
	case isOne && r.Method == http.MethodPut:
		call.Action = "UpdateSchedule"
	case isOne && r.Method == http.MethodGet:
		call.Action = "GetSchedule"
	case isOne && r.Method == http.MethodDelete:
		call.Action = "DeleteSchedule"
	case r.URL.Path == "/schedules" && r.Method == http.MethodGet:
		call.Action = "ListSchedules"
	}
	finish := func(status int, resp any, e *schedError) {
		call.Status = status
		if e != nil {
			call.Status = e.status
			call.Err = e.code + ": " + e.message
			if call.Action == "" {
				call.Rejected = call.Err
			}
		}
		s.record(call)
		if e != nil {
			writeJSONError(w, e.status, e.code, e.message, reqID)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Amzn-RequestId", reqID)
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(resp)
	}
	if call.Action == "" {
		finish(0, nil, &schedError{http.StatusNotFound, "UnknownOperationException", "ec2test: no Scheduler operation is " + r.Method + " " + r.URL.Path})
		return
	}
	s.mu.Lock()
	injected, hasErr := s.errs[call.Action]
	s.mu.Unlock()
	if hasErr {
		finish(0, nil, &schedError{injected.status, injected.code, injected.message})
		return
	}
	region := credentialRegion(r.Header.Get("Authorization"))
	q := r.URL.Query()
	var resp any
	var e *schedError
	switch call.Action {
	case "CreateSchedule", "UpdateSchedule":
		resp, e = s.putSchedule(call.Action == "CreateSchedule", name, region, body)
	case "GetSchedule":
		resp, e = s.getSchedule(name, q.Get("groupName"))
	case "DeleteSchedule":
		resp, e = s.deleteSchedule(name, q.Get("groupName"))
	case "ListSchedules":
		resp, e = s.listSchedules(q.Get("ScheduleGroup"), q.Get("NamePrefix"), q.Get("State"))
	}
	finish(http.StatusOK, resp, e)
}

// checkName validates a schedule name and group, and resolves the group.
func checkName(name, group string) (string, *schedError) {
	if !scheduleNamePattern.MatchString(name) {
		return "", validation("1 validation error detected: Value '%s' at 'name' failed to satisfy constraint: Member must satisfy regular expression pattern: [0-9a-zA-Z-_.]+ and have length between 1 and 64", name)
	}
	if group == "" {
		group = "default"
	}
	if !scheduleNamePattern.MatchString(group) {
		return "", validation("1 validation error detected: Value '%s' at 'groupName' failed to satisfy constraint: Member must satisfy regular expression pattern: [0-9a-zA-Z-_.]+", group)
	}
	if group != "default" {
		return "", &schedError{http.StatusNotFound, "ResourceNotFoundException", fmt.Sprintf("Schedule group %s does not exist.", group)}
	}
	return group, nil
}

func (s *Server) putSchedule(create bool, name, region string, body []byte) (any, *schedError) {
	var in scheduleInputJSON
	if len(body) > 0 {
		if err := json.Unmarshal(body, &in); err != nil {
			return nil, &schedError{http.StatusBadRequest, "SerializationException", "ec2test: the body is not the JSON of a schedule: " + err.Error()}
		}
	}
	group, e := checkName(name, in.GroupName)
	if e != nil {
		return nil, e
	}
	sc, e := validateSchedule(in)
	if e != nil {
		return nil, e
	}
	sc.Name, sc.Group = name, group
	sc.ARN = fmt.Sprintf("arn:aws:scheduler:%s:%s:schedule/%s/%s", region, s.o.Account, group, name)
	key := group + "/" + name
	s.mu.Lock()
	defer s.mu.Unlock()
	old, exists := s.schedules[key]
	now := time.Now().UTC().Truncate(time.Millisecond)
	switch {
	case create && exists:
		return nil, &schedError{http.StatusConflict, "ConflictException", fmt.Sprintf("Schedule %s already exists.", name)}
	case !create && !exists:
		return nil, &schedError{http.StatusNotFound, "ResourceNotFoundException", fmt.Sprintf("Schedule %s does not exist.", name)}
	case create:
		sc.Created = now
	default:
		sc.Created = old.Created
	}
	sc.Modified = now
	s.schedules[key] = &schedule{Schedule: sc}
	s.armLocked()
	return map[string]string{"ScheduleArn": sc.ARN}, nil
}

// validateSchedule checks a Create/UpdateSchedule body the way Scheduler
// does (both replace the whole schedule, so both need every required
// member).
func validateSchedule(in scheduleInputJSON) (Schedule, *schedError) {
	var sc Schedule
	if in.ScheduleExpression == "" {
		return sc, validation("1 validation error detected: Value null at 'scheduleExpression' failed to satisfy constraint: Member must not be null")
	}
	if len(in.ScheduleExpression) > 256 {
		return sc, validation("1 validation error detected: Value at 'scheduleExpression' failed to satisfy constraint: Member must have length less than or equal to 256")
	}
	if in.FlexibleTimeWindow == nil {
		return sc, validation("1 validation error detected: Value null at 'flexibleTimeWindow' failed to satisfy constraint: Member must not be null")
	}
	if in.Target == nil {
		return sc, validation("1 validation error detected: Value null at 'target' failed to satisfy constraint: Member must not be null")
	}
	if in.ScheduleExpressionTimezone != "" {
		if _, err := time.LoadLocation(in.ScheduleExpressionTimezone); err != nil {
			return sc, validation("Invalid timezone %s.", in.ScheduleExpressionTimezone)
		}
	}
	switch {
	case strings.HasPrefix(in.ScheduleExpression, "at("):
		at, err := ParseAt(in.ScheduleExpression, in.ScheduleExpressionTimezone)
		if err != nil {
			return sc, validation("Invalid Schedule Expression %s.", in.ScheduleExpression)
		}
		sc.At = at
	case ratePattern.MatchString(in.ScheduleExpression), cronPattern.MatchString(in.ScheduleExpression):
	default:
		return sc, validation("Invalid Schedule Expression %s.", in.ScheduleExpression)
	}
	switch in.FlexibleTimeWindow.Mode {
	case "OFF":
		if in.FlexibleTimeWindow.MaximumWindowInMinutes != nil {
			return sc, validation("MaximumWindowInMinutes is not allowed when Mode is OFF.")
		}
	case "FLEXIBLE":
		if m := in.FlexibleTimeWindow.MaximumWindowInMinutes; m == nil || *m < 1 || *m > 1440 {
			return sc, validation("MaximumWindowInMinutes must be between 1 and 1440 when Mode is FLEXIBLE.")
		}
	case "":
		return sc, validation("1 validation error detected: Value null at 'flexibleTimeWindow.mode' failed to satisfy constraint: Member must not be null")
	default:
		return sc, validation("1 validation error detected: Value '%s' at 'flexibleTimeWindow.mode' failed to satisfy constraint: Member must satisfy enum value set: [OFF, FLEXIBLE]", in.FlexibleTimeWindow.Mode)
	}
	t := in.Target
	if t.Arn == "" || len(t.Arn) > 1600 {
		return sc, validation("1 validation error detected: Value at 'target.arn' failed to satisfy constraint: Member must have length between 1 and 1600")
	}
	if t.RoleArn == "" {
		return sc, validation("1 validation error detected: Value null at 'target.roleArn' failed to satisfy constraint: Member must not be null")
	}
	if !roleARNPattern.MatchString(t.RoleArn) {
		return sc, validation("1 validation error detected: Value '%s' at 'target.roleArn' failed to satisfy constraint: Member must satisfy regular expression pattern: ^arn:aws(-[a-z]+)?:iam::\\d{12}:role\\/[\\w+=,.@\\/-]+$", t.RoleArn)
	}
	if len(t.Input) > 8192 {
		return sc, validation("1 validation error detected: Value at 'target.input' failed to satisfy constraint: Member must have length less than or equal to 8192")
	}
	if strings.Contains(t.Arn, ":aws-sdk:") {
		if !universalPattern.MatchString(t.Arn) {
			return sc, validation("Invalid target ARN %s.", t.Arn)
		}
		if t.Input != "" && !json.Valid([]byte(t.Input)) {
			return sc, validation("Invalid RequestJson provided. Reason: the input is not JSON.")
		}
	}
	switch in.ActionAfterCompletion {
	case "", "NONE", "DELETE":
	default:
		return sc, validation("1 validation error detected: Value '%s' at 'actionAfterCompletion' failed to satisfy constraint: Member must satisfy enum value set: [NONE, DELETE]", in.ActionAfterCompletion)
	}
	switch in.State {
	case "", "ENABLED", "DISABLED":
	default:
		return sc, validation("1 validation error detected: Value '%s' at 'state' failed to satisfy constraint: Member must satisfy enum value set: [ENABLED, DISABLED]", in.State)
	}
	sc.Expression = in.ScheduleExpression
	sc.Timezone = in.ScheduleExpressionTimezone
	sc.TargetARN, sc.RoleARN, sc.Input = t.Arn, t.RoleArn, t.Input
	sc.ActionAfterCompletion = in.ActionAfterCompletion
	if sc.ActionAfterCompletion == "" {
		sc.ActionAfterCompletion = "NONE"
	}
	sc.State = in.State
	if sc.State == "" {
		sc.State = "ENABLED"
	}
	sc.FlexibleMode = in.FlexibleTimeWindow.Mode
	sc.Description = in.Description
	return sc, nil
}

// epoch is a timestamp as rest-json sends it by default: seconds since the
// epoch, fractional.
func epoch(t time.Time) json.Number {
	return json.Number(strconv.FormatFloat(float64(t.UnixMilli())/1000, 'f', -1, 64))
}

func (s *Server) getSchedule(name, group string) (any, *schedError) {
	group, e := checkName(name, group)
	if e != nil {
		return nil, e
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	sc, ok := s.schedules[group+"/"+name]
	if !ok {
		return nil, &schedError{http.StatusNotFound, "ResourceNotFoundException", fmt.Sprintf("Schedule %s does not exist.", name)}
	}
	out := map[string]any{
		"ActionAfterCompletion": sc.ActionAfterCompletion,
		"Arn":                   sc.ARN,
		"CreationDate":          epoch(sc.Created),
		"FlexibleTimeWindow":    map[string]string{"Mode": sc.FlexibleMode},
		"GroupName":             sc.Group,
		"LastModificationDate":  epoch(sc.Modified),
		"Name":                  sc.Name,
		"ScheduleExpression":    sc.Expression,
		"State":                 sc.State,
		"Target":                targetJSON{Arn: sc.TargetARN, RoleArn: sc.RoleARN, Input: sc.Input},
	}
	if sc.Timezone != "" {
		out["ScheduleExpressionTimezone"] = sc.Timezone
	}
	if sc.Description != "" {
		out["Description"] = sc.Description
	}
	return out, nil
}

func (s *Server) deleteSchedule(name, group string) (any, *schedError) {
	group, e := checkName(name, group)
	if e != nil {
		return nil, e
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.schedules[group+"/"+name]; !ok {
		return nil, &schedError{http.StatusNotFound, "ResourceNotFoundException", fmt.Sprintf("Schedule %s does not exist.", name)}
	}
	delete(s.schedules, group+"/"+name)
	s.armLocked()
	return map[string]string{}, nil
}

func (s *Server) listSchedules(group, prefix, state string) (any, *schedError) {
	if group != "" && group != "default" {
		return nil, &schedError{http.StatusNotFound, "ResourceNotFoundException", fmt.Sprintf("Schedule group %s does not exist.", group)}
	}
	switch state {
	case "", "ENABLED", "DISABLED":
	default:
		return nil, validation("1 validation error detected: Value '%s' at 'state' failed to satisfy constraint: Member must satisfy enum value set: [ENABLED, DISABLED]", state)
	}
	type summary struct {
		Arn                  string            `json:"Arn"`
		CreationDate         json.Number       `json:"CreationDate"`
		GroupName            string            `json:"GroupName"`
		LastModificationDate json.Number       `json:"LastModificationDate"`
		Name                 string            `json:"Name"`
		State                string            `json:"State"`
		Target               map[string]string `json:"Target"`
	}
	list := []summary{}
	for _, sc := range s.Schedules() {
		if !strings.HasPrefix(sc.Name, prefix) || (state != "" && sc.State != state) {
			continue
		}
		list = append(list, summary{sc.ARN, epoch(sc.Created), sc.Group, epoch(sc.Modified), sc.Name, sc.State, map[string]string{"Arn": sc.TargetARN}})
	}
	return map[string]any{"Schedules": list}, nil
}
