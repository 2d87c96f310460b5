package armsim

import (
	"net/http"
	"strconv"
	"strings"
	"time"
)

// params are the variable parts of a matched route.
type params struct {
	sub, rg, name, child, opID string
}

type handlerFunc func(w http.ResponseWriter, r *http.Request, p params) *armError

// route is a matched request: which operation, whether it spends write tokens, and the handler.
type route struct {
	op     Op
	write  bool
	p      params
	handle handlerFunc
}

// match resolves a request path (case-insensitively) and method to a route.
func (s *Server) match(method, path string) (*route, *armError) {
	seg := strings.Split(strings.Trim(path, "/"), "/")
	low := make([]string, len(seg))
	for i, x := range seg {
		low[i] = strings.ToLower(x)
	}
	is := func(i int, want string) bool { return i < len(low) && low[i] == want }
	if len(seg) < 2 || !is(0, "subscriptions") {
		return nil, errorf(http.StatusNotFound, CodeNotFound, "no route for %s", path)
	}
	p := params{sub: seg[1]}
	switch {
	case len(seg) == 5 && is(2, "providers") && is(3, "microsoft.network") && is(4, "networkinterfaces"):
		return s.method(method, p, map[string]route{http.MethodGet: {op: OpListNICs, handle: s.listNICs}})
	case len(seg) == 8 && is(2, "providers") && is(3, "microsoft.network") && is(4, "locations") && is(6, "operations"):
		p.opID = seg[7]
		return s.method(method, p, map[string]route{http.MethodGet: {op: OpPollOperation, handle: s.pollOperation}})
	case len(seg) >= 7 && is(2, "resourcegroups") && is(4, "providers") && is(5, "microsoft.network"):
		p.rg = seg[3]
		return s.matchInResourceGroup(method, path, seg, is, p)
	}
	return nil, errorf(http.StatusNotFound, CodeNotFound, "no route for %s", path)
}

// matchInResourceGroup resolves the routes under
// /subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Network; is
// compares a lower-cased segment of seg.
func (s *Server) matchInResourceGroup(method, path string, seg []string, is func(int, string) bool, p params) (*route, *armError) {
	low := func(i int) string { return strings.ToLower(seg[i]) }
	switch {
	case len(seg) == 7 && is(6, "networkinterfaces"):
		return s.method(method, p, map[string]route{http.MethodGet: {op: OpListNICs, handle: s.listNICs}})
	case len(seg) == 8 && is(6, "networkinterfaces"):
		p.name = seg[7]
		return s.method(method, p, map[string]route{
			http.MethodGet:    {op: OpGetNIC, handle: s.getNIC},
			http.MethodPut:    {op: OpPutNIC, write: true, handle: s.putNIC},
			http.MethodDelete: {op: OpDeleteNIC, write: true, handle: s.deleteNIC},
		})
	case len(seg) == 8 && is(6, "virtualnetworks"):
		p.name = seg[7]
		return s.method(method, p, map[string]route{http.MethodGet: {op: OpGetVNet, handle: s.getVNet}})
	case len(seg) == 10 && is(6, "virtualnetworks") && is(8, "subnets"):
		p.name, p.child = seg[7], seg[9]
		return s.method(method, p, map[string]route{
			http.MethodGet: {op: OpGetSubnet, handle: s.getSubnet},
			http.MethodPut: {op: OpPutSubnet, write: true, handle: s.putSubnet},
		})
	case len(seg) == 8 && kinds[low(6)] != nil:
		k := kinds[low(6)]
		p.name = seg[7]
		return s.method(method, p, map[string]route{
			http.MethodGet:    {op: k.getOp, handle: s.getResource(k)},
			http.MethodPut:    {op: k.putOp, write: true, handle: s.putResource(k)},
			http.MethodDelete: {op: k.delOp, write: true, handle: s.deleteResource(k)},
		})
	}
	return nil, errorf(http.StatusNotFound, CodeNotFound, "no route for %s", path)
}

func (s *Server) method(method string, p params, routes map[string]route) (*route, *armError) {
	rt, ok := routes[method]
	if !ok {
		return nil, errorf(http.StatusMethodNotAllowed, "MethodNotAllowed", "method %s is not supported on this resource", method)
	}
	rt.p = p
	return &rt, nil
}

// statusRecorder remembers the status code written, for Stats and logging.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

// serveHTTP authenticates, routes, throttles, injects faults and dispatches a request.
func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rec := &statusRecorder{ResponseWriter: w}
	rec.Header().Set("x-ms-request-id", newUUID())
	rt, aerr := s.prepare(rec, r)
	if aerr == nil {
		aerr = rt.handle(rec, r, rt.p)
	}
	if aerr != nil {
		writeError(rec, aerr)
	}
	if rt != nil {
		s.mu.Lock()
		s.stats.record(rt.op, rec.status)
		s.mu.Unlock()
	}
	s.opts.Logf("armsim: %s %s -> %d (%s)", r.Method, r.URL.Path, rec.status, time.Since(start).Round(time.Microsecond))
}

// prepare runs every check that precedes the handler and returns the route to run.
// A non-nil route with an error is still counted in Stats under its operation.
func (s *Server) prepare(w http.ResponseWriter, r *http.Request) (*route, *armError) {
	auth := r.Header.Get("Authorization")
	if len(auth) <= len("Bearer ") || !strings.EqualFold(auth[:len("Bearer ")], "Bearer ") {
		return nil, errorf(http.StatusUnauthorized, CodeAuthenticationFailed, "authentication failed: the Authorization header is missing or is not a bearer token")
	}
	rt, aerr := s.match(r.Method, r.URL.Path)
	if aerr != nil {
		return nil, aerr
	}
	if aerr := s.authorize(auth[len("Bearer "):], rt, r.URL.Path); aerr != nil {
		return rt, aerr
	}
	if r.URL.Query().Get("api-version") == "" {
		return rt, errorf(http.StatusBadRequest, CodeMissingAPIVersion, "the api-version query parameter (?api-version=) is required for all requests")
	}
	s.mu.Lock()
	remaining, aerr := s.throttleLocked(rt.p.sub, rt.write)
	delay := s.faults.latency[rt.op]
	s.mu.Unlock()
	if remaining >= 0 {
		// ARM reports the tokens left so clients can pace themselves.
		hdr := "x-ms-ratelimit-remaining-subscription-reads"
		if rt.write {
			hdr = "x-ms-ratelimit-remaining-subscription-writes"
		}
		w.Header().Set(hdr, strconv.Itoa(remaining))
	}
	if aerr != nil {
		return rt, aerr
	}
	if delay > 0 {
		select {
		case <-time.After(delay):
		case <-r.Context().Done():
			return rt, errorf(http.StatusRequestTimeout, "RequestTimeout", "request cancelled by the client")
		}
	}
	s.mu.Lock()
	aerr = s.injectedLocked(rt.op)
	s.mu.Unlock()
	if aerr != nil {
		return rt, aerr
	}
	if !strings.EqualFold(rt.p.sub, s.sub) {
		return rt, errorf(http.StatusNotFound, CodeSubscriptionNotFound, "The subscription '%s' could not be found.", rt.p.sub)
	}
	return rt, nil
}
