package ec2test

import (
	"encoding/xml"
	"sort"
)

// The response documents. Element names follow the EC2 API's wire names
// (lower camel case; lists are <xxxSet> of <item>), which is what the SDK's
// ec2query deserializers look for.

type describeInstancesResponse struct {
	XMLName      xml.Name         `xml:"http://ec2.amazonaws.com/doc/2016-11-15/ DescribeInstancesResponse"`
	RequestID    string           `xml:"requestId"`
	Reservations []reservationXML `xml:"reservationSet>item"`
}

type reservationXML struct {
	ReservationID string        `xml:"reservationId"`
	OwnerID       string        `xml:"ownerId"`
	Instances     []instanceXML `xml:"instancesSet>item"`
}

type instanceXML struct {
	InstanceID string           `xml:"instanceId"`
	State      instanceStateXML `xml:"instanceState"`
	DNSName    string           `xml:"dnsName,omitempty"`
	IPAddress  string           `xml:"ipAddress,omitempty"`
	Tags       []tagXML         `xml:"tagSet>item,omitempty"`
}

type instanceStateXML struct {
	Code int    `xml:"code"`
	Name string `xml:"name"`
}

type tagXML struct {
	Key   string `xml:"key"`
	Value string `xml:"value"`
}

type describeInstanceStatusResponse struct {
	XMLName   xml.Name            `xml:"http://ec2.amazonaws.com/doc/2016-11-15/ DescribeInstanceStatusResponse"`
	RequestID string              `xml:"requestId"`
	Statuses  []instanceStatusXML `xml:"instanceStatusSet>item"`
}

type instanceStatusXML struct {
	InstanceID     string           `xml:"instanceId"`
	State          instanceStateXML `xml:"instanceState"`
	SystemStatus   statusSummaryXML `xml:"systemStatus"`
	InstanceStatus statusSummaryXML `xml:"instanceStatus"`
}

type statusSummaryXML struct {
	Status  string            `xml:"status"`
	Details []statusDetailXML `xml:"details>item"`
}

type statusDetailXML struct {
	Name   string `xml:"name"`
	Status string `xml:"status"`
}

type stateChangeResponse struct {
	XMLName   xml.Name
	RequestID string           `xml:"requestId"`
	Changes   []stateChangeXML `xml:"instancesSet>item"`
}

type stateChangeXML struct {
	InstanceID string           `xml:"instanceId"`
	Current    instanceStateXML `xml:"currentState"`
	Previous   instanceStateXML `xml:"previousState"`
}

type consoleOutputResponse struct {
	XMLName    xml.Name `xml:"http://ec2.amazonaws.com/doc/2016-11-15/ GetConsoleOutputResponse"`
	RequestID  string   `xml:"requestId"`
	InstanceID string   `xml:"instanceId"`
	Timestamp  string   `xml:"timestamp"`
	Output     string   `xml:"output,omitempty"`
}

// errorResponse is the EC2 error envelope; note it has no namespace and
// spells RequestID in capitals, unlike the success documents.
type errorResponse struct {
	XMLName   xml.Name   `xml:"Response"`
	Errors    []errorXML `xml:"Errors>Error"`
	RequestID string     `xml:"RequestID"`
}

type errorXML struct {
	Code    string `xml:"Code"`
	Message string `xml:"Message"`
}

func stateXML(name string) instanceStateXML {
	return instanceStateXML{Code: stateCodes[name], Name: name}
}

func tagsXML(tags map[string]string) []tagXML {
	out := make([]tagXML, 0, len(tags))
	for k, v := range tags {
		out = append(out, tagXML{Key: k, Value: v})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out
}

// summaryXML adds the one detail EC2 reports per check (reachability),
// with the detail status EC2 pairs with each statusSummaryXML status.
func summaryXML(status string) statusSummaryXML {
	detail := map[string]string{
		CheckOK:           "passed",
		CheckInitializing: "initializing",
		CheckImpaired:     "failed",
	}[status]
	if detail == "" {
		return statusSummaryXML{Status: status}
	}
	return statusSummaryXML{Status: status, Details: []statusDetailXML{{Name: "reachability", Status: detail}}}
}

// withRequestID fills in the request id of any response document.
func withRequestID(resp any, id string) any {
	switch r := resp.(type) {
	case *describeInstancesResponse:
		r.RequestID = id
	case *describeInstanceStatusResponse:
		r.RequestID = id
	case *stateChangeResponse:
		r.RequestID = id
	case *consoleOutputResponse:
		r.RequestID = id
	}
	return resp
}
