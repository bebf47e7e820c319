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
