package armsim_test

import (
	"errors"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
)

func asResponseError(err error, re **azcore.ResponseError) bool { return errors.As(err, re) }

func mustResponseError(t interface {
	Helper()
	Fatalf(string, ...any)
}, err error) *azcore.ResponseError {
	t.Helper()
	var re *azcore.ResponseError
	if !errors.As(err, &re) {
		t.Fatalf("want *azcore.ResponseError, got %v", err)
	}
	return re
}
