package robots_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	authnv1 "github.com/portcullis-dev/portcullis/proto/portcullis/authn/v1"
	"github.com/portcullis-dev/portcullis/services/authn/robots"
)

func TestAdminServer(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	s := robots.NewAdminServer(f.m, nil)
	ctx := context.Background()

	created, err := s.CreateRobot(ctx, &authnv1.CreateRobotRequest{Name: "ci", Groups: []string{"ci"},
		Labels: map[string]string{"team": "platform"}, ExpiresIn: durationpb.New(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	r := created.GetRobot()
	if !robots.WellFormed(created.GetKey()) || r.GetName() != "ci" || r.GetSubject() != "robot:ci" || r.GetId() == "" ||
		r.GetState() != authnv1.RobotState_ROBOT_STATE_ACTIVE || r.GetLabels()["team"] != "platform" ||
		!r.GetExpiresAt().AsTime().Equal(f.clk.Now().Add(time.Hour)) || r.GetLastUsedAt() != nil || r.GetRevokedAt() != nil {
		t.Fatalf("CreateRobot = %v", created)
	}
	// The key works, and is never shown again.
	if _, _, err := f.m.Check(ctx, "ci", created.GetKey(), ""); err != nil {
		t.Fatalf("the created key: %v", err)
	}
	got, err := s.GetRobot(ctx, &authnv1.GetRobotRequest{Name: "ci"})
	if err != nil || got.GetRobot().GetId() != r.GetId() || strings.Contains(got.String(), created.GetKey()[4:]) {
		t.Fatalf("GetRobot = %v, %v", got, err)
	}
	if _, err := s.CreateRobot(ctx, &authnv1.CreateRobotRequest{Name: "no-expiry"}); err != nil {
		t.Fatal(err)
	}
	f.clk.Add(2 * time.Hour)
	list, err := s.ListRobots(ctx, &authnv1.ListRobotsRequest{PageSize: 1})
	if err != nil || len(list.GetRobots()) != 1 || list.GetNextPageToken() == "" ||
		list.GetRobots()[0].GetState() != authnv1.RobotState_ROBOT_STATE_EXPIRED {
		t.Fatalf("ListRobots page 1 = %v, %v; want the expired ci and a next page", list, err)
	}
	list, err = s.ListRobots(ctx, &authnv1.ListRobotsRequest{PageSize: 1, PageToken: list.GetNextPageToken()})
	if err != nil || len(list.GetRobots()) != 1 || list.GetNextPageToken() != "" || list.GetRobots()[0].GetName() != "no-expiry" ||
		list.GetRobots()[0].GetExpiresAt() != nil {
		t.Fatalf("ListRobots page 2 = %v, %v", list, err)
	}
	rev, err := s.RevokeRobot(ctx, &authnv1.RevokeRobotRequest{Name: "ci"})
	if err != nil || rev.GetRobot().GetState() != authnv1.RobotState_ROBOT_STATE_REVOKED || rev.GetRobot().GetRevokedAt() == nil {
		t.Fatalf("RevokeRobot = %v, %v", rev, err)
	}
	if _, err := s.RevokeRobot(ctx, &authnv1.RevokeRobotRequest{Name: "ci"}); err != nil {
		t.Fatalf("RevokeRobot again: %v, want no error", err)
	}
	if _, _, err := f.m.Check(ctx, "ci", created.GetKey(), ""); !errors.Is(err, robots.ErrRefused) {
		t.Fatalf("the revoked key: %v", err)
	}

	for _, tc := range []struct {
		name string
		call func() error
		want codes.Code
		msg  string
	}{
		{"duplicate name", func() error {
			_, err := s.CreateRobot(ctx, &authnv1.CreateRobotRequest{Name: "no-expiry"})
			return err
		}, codes.AlreadyExists, "exists"},
		{"bad name", func() error {
			_, err := s.CreateRobot(ctx, &authnv1.CreateRobotRequest{Name: "Robot:X"})
			return err
		}, codes.InvalidArgument, "name must be"},
		{"no name", func() error { _, err := s.CreateRobot(ctx, &authnv1.CreateRobotRequest{}); return err }, codes.InvalidArgument, "name is required"},
		{"zero expiry", func() error {
			_, err := s.CreateRobot(ctx, &authnv1.CreateRobotRequest{Name: "z", ExpiresIn: durationpb.New(0)})
			return err
		}, codes.InvalidArgument, "expires_in must be positive"},
		{"negative expiry", func() error {
			_, err := s.CreateRobot(ctx, &authnv1.CreateRobotRequest{Name: "z", ExpiresIn: durationpb.New(-time.Hour)})
			return err
		}, codes.InvalidArgument, "must not be negative"},
		{"invalid duration", func() error {
			_, err := s.CreateRobot(ctx, &authnv1.CreateRobotRequest{Name: "z", ExpiresIn: &durationpb.Duration{Seconds: 1, Nanos: -1}})
			return err
		}, codes.InvalidArgument, "not a valid duration"},
		{"get unknown", func() error { _, err := s.GetRobot(ctx, &authnv1.GetRobotRequest{Name: "nobody"}); return err }, codes.NotFound, "robot not found"},
		{"get no name", func() error { _, err := s.GetRobot(ctx, &authnv1.GetRobotRequest{}); return err }, codes.InvalidArgument, "name is required"},
		{"revoke unknown", func() error { _, err := s.RevokeRobot(ctx, &authnv1.RevokeRobotRequest{Name: "nobody"}); return err }, codes.NotFound, "robot not found"},
		{"revoke no name", func() error { _, err := s.RevokeRobot(ctx, &authnv1.RevokeRobotRequest{}); return err }, codes.InvalidArgument, "name is required"},
		{"negative page size", func() error { _, err := s.ListRobots(ctx, &authnv1.ListRobotsRequest{PageSize: -1}); return err }, codes.InvalidArgument, "page_size"},
		{"forged page token", func() error { _, err := s.ListRobots(ctx, &authnv1.ListRobotsRequest{PageToken: "AAAA"}); return err }, codes.InvalidArgument, "invalid page token"},
	} {
		err := tc.call()
		if st, _ := status.FromError(err); st.Code() != tc.want || !strings.Contains(st.Message(), tc.msg) {
			t.Errorf("%s: %v, want %v %q", tc.name, err, tc.want, tc.msg)
		}
	}

	// A store failure is Unavailable, its text kept out of the answer.
	f.st.Memory.Fail(errors.New("pq: password authentication failed for user portcullis"))
	_, err = s.ListRobots(ctx, &authnv1.ListRobotsRequest{})
	if st, _ := status.FromError(err); st.Code() != codes.Unavailable || strings.Contains(st.Message(), "pq") {
		t.Fatalf("ListRobots with the store down: %v, want Unavailable without its text", err)
	}
}
