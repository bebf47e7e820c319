package bus

import "context"

type serviceKey struct{}

// ContextWithService returns ctx carrying the acting service's id. The NATS
// service layer sets it from the identity the server asserts; without it
// the Manager acts as its own service id.
func ContextWithService(ctx context.Context, serviceID string) context.Context {
	return context.WithValue(ctx, serviceKey{}, serviceID)
}

// ServiceFromContext returns the acting service set by [ContextWithService].
func ServiceFromContext(ctx context.Context) (string, bool) {
	id, ok := ctx.Value(serviceKey{}).(string)
	return id, ok && id != ""
}

type remoteKey struct{}

// ContextWithRemote returns ctx carrying the network address a
// verification comes from. VerifyService then rate limits per service id
// and address, so failures from one host cannot lock a service out from
// everywhere. The auth callout sets it from what the server reports.
func ContextWithRemote(ctx context.Context, addr string) context.Context {
	return context.WithValue(ctx, remoteKey{}, addr)
}

func remoteFromContext(ctx context.Context) string {
	addr, _ := ctx.Value(remoteKey{}).(string)
	return addr
}
