package access

import (
	"context"
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// ErrNotAllowed means the platform's own principal may not manage users
// or ACLs on this cluster (no ALTER on the cluster, or SCRAM not enabled):
// the caller falls back to sharing its principal, and says so.
var ErrNotAllowed = errors.New("this principal may not manage SCRAM users or ACLs on the cluster (needs ALTER on the cluster, and SCRAM enabled)")

// SetUser creates or updates user with password (SCRAM-SHA-256).
func SetUser(ctx context.Context, cl *kgo.Client, user, password string) error {
	res, err := kadm.NewClient(cl).AlterUserSCRAMs(ctx, nil, []kadm.UpsertSCRAM{{
		User: user, Mechanism: kadm.ScramSha256, Iterations: 4096, Password: password,
	}})
	if err == nil {
		err = res.Error()
	}
	return wrapAuth(fmt.Sprintf("set SCRAM credential of %s", user), err)
}

// Grants makes principal's ACLs exactly grants: it adds the missing ones
// first and then removes the rest, so a principal that keeps a permission
// across an update never loses it, even for a moment.
func Grants(ctx context.Context, cl *kgo.Client, user string, grants []Grant) error {
	principal := Principal(user)
	have, err := describe(ctx, cl, principal)
	if err != nil {
		return err
	}
	want := map[binding]bool{}
	for _, g := range grants {
		for _, op := range g.Ops {
			want[binding{g.Resource, g.Name, g.Pattern, op, permission(g.Deny)}] = true
		}
	}
	create := kmsg.NewPtrCreateACLsRequest()
	for b := range want {
		if have[b] {
			continue
		}
		c := kmsg.NewCreateACLsRequestCreation()
		c.ResourceType, c.ResourceName, c.ResourcePatternType = b.resource, b.name, b.pattern
		c.Principal, c.Host, c.Operation, c.PermissionType = principal, "*", b.op, b.perm
		create.Creations = append(create.Creations, c)
	}
	if len(create.Creations) > 0 {
		resp, err := create.RequestWith(ctx, cl)
		if err != nil {
			return fmt.Errorf("create ACLs of %s: %w", principal, err)
		}
		for _, r := range resp.Results {
			if err := kerr.ErrorForCode(r.ErrorCode); err != nil {
				return wrapAuth(fmt.Sprintf("create ACLs of %s", principal), err)
			}
		}
	}
	var stale []binding
	for b := range have {
		if !want[b] {
			stale = append(stale, b)
		}
	}
	return deleteBindings(ctx, cl, principal, stale)
}

// Revoke removes user's SCRAM credential and every ACL of its principal.
// A user that does not exist is not an error.
func Revoke(ctx context.Context, cl *kgo.Client, user string) error {
	principal := Principal(user)
	del := kmsg.NewPtrDeleteACLsRequest()
	f := kmsg.NewDeleteACLsRequestFilter()
	f.ResourceType, f.ResourcePatternType = kmsg.ACLResourceTypeAny, kmsg.ACLResourcePatternTypeAny
	f.Principal, f.Operation, f.PermissionType = &principal, kmsg.ACLOperationAny, kmsg.ACLPermissionTypeAny
	del.Filters = append(del.Filters, f)
	resp, err := del.RequestWith(ctx, cl)
	if err != nil {
		return fmt.Errorf("delete ACLs of %s: %w", principal, err)
	}
	for _, r := range resp.Results {
		if err := kerr.ErrorForCode(r.ErrorCode); err != nil {
			return wrapAuth(fmt.Sprintf("delete ACLs of %s", principal), err)
		}
	}
	res, err := kadm.NewClient(cl).AlterUserSCRAMs(ctx, []kadm.DeleteSCRAM{{User: user, Mechanism: kadm.ScramSha256}}, nil)
	if err == nil {
		err = res.Error()
	}
	if errors.Is(err, kerr.ResourceNotFound) {
		return nil
	}
	return wrapAuth(fmt.Sprintf("delete SCRAM credential of %s", user), err)
}

// binding is one ACL of a principal, comparable.
type binding struct {
	resource kmsg.ACLResourceType
	name     string
	pattern  kmsg.ACLResourcePatternType
	op       kmsg.ACLOperation
	perm     kmsg.ACLPermissionType
}

func permission(deny bool) kmsg.ACLPermissionType {
	if deny {
		return kmsg.ACLPermissionTypeDeny
	}
	return kmsg.ACLPermissionTypeAllow
}

func describe(ctx context.Context, cl *kgo.Client, principal string) (map[binding]bool, error) {
	req := kmsg.NewPtrDescribeACLsRequest()
	req.ResourceType, req.ResourcePatternType = kmsg.ACLResourceTypeAny, kmsg.ACLResourcePatternTypeAny
	req.Principal, req.Operation, req.PermissionType = &principal, kmsg.ACLOperationAny, kmsg.ACLPermissionTypeAny
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return nil, fmt.Errorf("describe ACLs of %s: %w", principal, err)
	}
	if err := kerr.ErrorForCode(resp.ErrorCode); err != nil {
		return nil, wrapAuth(fmt.Sprintf("describe ACLs of %s", principal), err)
	}
	have := map[binding]bool{}
	for _, r := range resp.Resources {
		for _, a := range r.ACLs {
			if a.Host != "*" {
				continue // not ours: we only ever grant every host
			}
			have[binding{r.ResourceType, r.ResourceName, r.ResourcePatternType, a.Operation, a.PermissionType}] = true
		}
	}
	return have, nil
}

func deleteBindings(ctx context.Context, cl *kgo.Client, principal string, bs []binding) error {
	if len(bs) == 0 {
		return nil
	}
	del := kmsg.NewPtrDeleteACLsRequest()
	for _, b := range bs {
		f := kmsg.NewDeleteACLsRequestFilter()
		name, host := b.name, "*"
		f.ResourceType, f.ResourceName, f.ResourcePatternType = b.resource, &name, b.pattern
		f.Principal, f.Host, f.Operation, f.PermissionType = &principal, &host, b.op, b.perm
		del.Filters = append(del.Filters, f)
	}
	resp, err := del.RequestWith(ctx, cl)
	if err != nil {
		return fmt.Errorf("delete stale ACLs of %s: %w", principal, err)
	}
	for _, r := range resp.Results {
		if err := kerr.ErrorForCode(r.ErrorCode); err != nil {
			return wrapAuth(fmt.Sprintf("delete stale ACLs of %s", principal), err)
		}
	}
	return nil
}

// wrapAuth marks the errors that mean "you may not do this here" with
// ErrNotAllowed, so callers can fall back instead of failing.
func wrapAuth(what string, err error) error {
	if err == nil {
		return nil
	}
	switch {
	case errors.Is(err, kerr.ClusterAuthorizationFailed),
		errors.Is(err, kerr.SecurityDisabled),
		errors.Is(err, kerr.UnsupportedSaslMechanism),
		errors.Is(err, kerr.UnsupportedVersion):
		return fmt.Errorf("%s: %w: %w", what, ErrNotAllowed, err)
	}
	return fmt.Errorf("%s: %w", what, err)
}
