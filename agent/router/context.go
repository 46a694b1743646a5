package router

import "context"

func contextWith(ctx context.Context, target string) context.Context {
	return context.WithValue(ctx, targetKey{}, target)
}
