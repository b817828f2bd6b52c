package app

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/stats"
	"google.golang.org/grpc/status"
	protov2 "google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/protoadapt"
)

// inprocConn is how the gateway of -target=all reaches this process's services: a
// grpc.ClientConnInterface that calls the registered handlers directly, with no transport
// between them. Everything a caller or a handler can see is what a gRPC
// connection gives (inproc_test.go holds the two side by side):
//   - the same client interceptor and stats handler (tracing) around the call, and the same
//     server stats handler and unary interceptor chain (metrics, request id, logging, the
//     role authorisation) around the handler;
//   - the caller presented as a gRPC server without credentials presents it (an address,
//     no AuthInfo), which the services' authoriser takes to be the gateway
//     (grpctls.Fixed) exactly as it takes the bufconn caller;
//   - outgoing metadata checked as a gRPC client checks it and arriving as incoming
//     metadata with what the transport adds (:authority, content-type, user-agent,
//     grpc-accept-encoding); the same deadline, and the end of the caller's context
//     cancelling the handler's; the handler's context carries none of the caller's other
//     values;
//   - messages isolated by encoding them as gRPC's proto codec does, so what fails to
//     marshal (a string that is not UTF-8) fails with the same status, and a message over
//     the receive limit too;
//   - a handler's error converted to a status as grpc-go's server converts it (non-status
//     errors become Unknown, context errors their codes), and a fresh copy returned;
//     unknown and malformed methods answer Unimplemented with grpc-go's messages.
//
// The server's side of a call runs on a long-lived goroutine, a warm worker's (warm), so
// its stack is grown once, not on every call as on a fresh gRPC stream goroutine; when
// every worker is busy, on a goroutine of its own, as gRPC's. A caller whose context ends
// first gets its context's status at once, as from a gRPC client, and the handler runs
// on, as on a gRPC server. Streams are not offered: the gateway calls only unary methods on
// these services.
type inprocConn struct {
	methods  map[string]inprocMethod
	services map[string]bool
	// clientInt and serverInt are the chained interceptors (nil: none).
	clientInt   grpc.UnaryClientInterceptor
	serverInt   grpc.UnaryServerInterceptor
	clientStats stats.Handler // nil: none
	serverStats stats.Handler // nil: none
	peer        *peer.Peer
	// bufs holds the *[]byte the messages are encoded into, freed when decoded.
	bufs sync.Pool
	// transportMD is what a gRPC client's transport adds to the metadata a server receives.
	transportMD metadata.MD
	// transportVals is how many values transportMD holds.
	transportVals int
	// maxRecv is gRPC's default receive limit, the same at both ends.
	maxRecv int
	// warm, when set, runs the server's side of calls on long-lived goroutines
	// (inproc_pool.go).
	warm  *warmPool
	calls sync.Pool // of *inprocCall
}

// inprocCall is the server's side of one call, run by a worker, the caller or a goroutine
// of its own; the caller waits for it or for the end of its context.
type inprocCall struct {
	c      *inprocConn
	cctx   context.Context
	method string
	md     metadata.MD
	req    *[]byte // the call's own: freed when served
	resp   *[]byte // the caller's once done, unless it left (then freed when served)
	st     *status.Status
	stream *inprocStream
	done   chan struct{} // one token when served, unless abandoned
	state  atomic.Int32
}

const (
	callRunning   = iota
	callDone      // served, the caller collects the answer
	callAbandoned // the caller's context ended first
)

func (k *inprocCall) serve() {
	k.resp, k.st, k.stream = k.c.serve(k.cctx, k.method, k.md, k.req)
	k.c.free(k.req)
}

// finish hands the answer to the caller, or drops it when the caller left.
func (k *inprocCall) finish() {
	if k.state.CompareAndSwap(callRunning, callDone) {
		k.done <- struct{}{}
		return
	}
	k.c.free(k.resp)
}

type inprocMethod struct {
	impl    any
	handler grpc.MethodHandler
}

// inprocAddr is the address both ends of the in-process channel report.
type inprocAddr struct{}

var _ net.Addr = inprocAddr{}

func (inprocAddr) Network() string { return "inproc" }
func (inprocAddr) String() string  { return "in-process" }

// grpcDefaultMaxRecv is grpc-go's default limit on a received message, client and server.
const grpcDefaultMaxRecv = 4 << 20

// newInprocConn returns a channel to the services registered on it. authority is what a
// gRPC client dialled at passthrough:///<authority> would send as :authority.
func newInprocConn(authority string, clientInt []grpc.UnaryClientInterceptor, clientStats stats.Handler,
	serverInt []grpc.UnaryServerInterceptor, serverStats stats.Handler) *inprocConn {
	md := metadata.MD{
		":authority":   {authority},
		"content-type": {"application/grpc"},
		"user-agent":   {"grpc-go/" + grpc.Version},
	}
	if encoding.GetCompressor("gzip") != nil { // grpc-go offers every compressor registered
		md["grpc-accept-encoding"] = []string{"gzip"}
	}
	c := &inprocConn{
		methods:     map[string]inprocMethod{},
		services:    map[string]bool{},
		clientInt:   chainUnaryClient(clientInt),
		serverInt:   chainUnaryServer(serverInt),
		clientStats: clientStats,
		serverStats: serverStats,
		// A gRPC server without credentials (-target=all's) gives its peers no AuthInfo.
		peer:        &peer.Peer{Addr: inprocAddr{}, LocalAddr: inprocAddr{}},
		transportMD: md,
		maxRecv:     grpcDefaultMaxRecv,
	}
	for _, v := range md {
		c.transportVals += len(v)
	}
	c.calls.New = func() any { return &inprocCall{done: make(chan struct{}, 1)} }
	return c
}

var _ grpc.ClientConnInterface = (*inprocConn)(nil)
var _ grpc.ServiceRegistrar = (*inprocConn)(nil)

// RegisterService makes desc's unary methods callable. Its streaming methods are not: a call
// to one answers Unimplemented.
func (c *inprocConn) RegisterService(desc *grpc.ServiceDesc, impl any) {
	if c.services[desc.ServiceName] {
		panic("inproc: service " + desc.ServiceName + " registered twice")
	}
	c.services[desc.ServiceName] = true
	for _, m := range desc.Methods {
		c.methods["/"+desc.ServiceName+"/"+m.MethodName] = inprocMethod{impl: impl, handler: m.Handler}
	}
}

// NewStream: no caller of the in-process channel streams.
func (c *inprocConn) NewStream(context.Context, *grpc.StreamDesc, string, ...grpc.CallOption) (grpc.ClientStream, error) {
	return nil, status.Error(codes.Unimplemented, "streaming calls are not offered in-process (-target=all): only unary methods are")
}

// Invoke runs the client interceptor, then the call.
func (c *inprocConn) Invoke(ctx context.Context, method string, args, reply any, opts ...grpc.CallOption) error {
	if c.clientInt != nil {
		// No *grpc.ClientConn exists to hand the interceptor; ours do not use it.
		return c.clientInt(ctx, method, args, reply, nil, c.invoke, opts...)
	}
	return c.invoke(ctx, method, args, reply, nil, opts...)
}

// invoke is what a ClientConn's invoker does: client stats, the request across, the answer
// back.
func (c *inprocConn) invoke(ctx context.Context, method string, args, reply any, _ *grpc.ClientConn, opts ...grpc.CallOption) (err error) {
	out, _ := metadata.FromOutgoingContext(ctx)
	if err := validateMD(out); err != nil {
		return status.Error(codes.Internal, err.Error())
	}
	if err := ctx.Err(); err != nil {
		return status.FromContextError(err).Err()
	}
	if sh := c.clientStats; sh != nil {
		ctx = sh.TagRPC(ctx, &stats.RPCTagInfo{FullMethodName: method, FailFast: true})
		begin := &stats.Begin{Client: true, BeginTime: time.Now(), FailFast: true}
		sh.HandleRPC(ctx, begin)
		defer func() {
			sh.HandleRPC(ctx, &stats.End{Client: true, BeginTime: begin.BeginTime, EndTime: time.Now(), Error: err})
		}()
		out, _ = metadata.FromOutgoingContext(ctx) // with the trace context it added
	}
	// out is FromOutgoingContext's copy, the caller's no longer. Without client stats
	// nothing else sees it, so it becomes the handler's metadata in place.
	in := out
	if c.clientStats == nil && in != nil {
		for k := range in {
			if reservedHeader(k) {
				delete(in, k)
			}
		}
	} else {
		in = make(metadata.MD, len(out)+len(c.transportMD))
		for k, v := range out {
			if !reservedHeader(k) {
				in[k] = v
			}
		}
	}
	// The transport's values, copied into one array (one allocation, not one a key); each
	// key's slice is capped so that a handler appending to it copies rather than writes
	// into the next key's values.
	vals := make([]string, c.transportVals)
	for k, v := range c.transportMD {
		n := copy(vals, v)
		in[k] = vals[:n:n]
		vals = vals[n:]
	}
	if sh := c.clientStats; sh != nil {
		sh.HandleRPC(ctx, &stats.OutHeader{Client: true, FullMethod: method, Header: out, RemoteAddr: c.peer.Addr, LocalAddr: c.peer.LocalAddr})
	}
	req, err := c.encode(args)
	if err != nil {
		c.abandoned(method, in)
		return err
	}
	k := c.calls.Get().(*inprocCall)
	k.c, k.cctx, k.method, k.md, k.req = c, ctx, method, in, req
	if !c.warm.submit(k) {
		if ctx.Done() == nil {
			k.serve()
			k.finish()
		} else {
			go func() { k.serve(); k.finish() }() // so that the caller can leave at its deadline
		}
	}
	select {
	case <-k.done:
	case <-ctx.Done():
		if k.state.CompareAndSwap(callRunning, callAbandoned) {
			// As a gRPC client, the caller gets its context's status at once; the handler
			// runs on, as on a gRPC server, and its answer is dropped.
			return status.FromContextError(ctx.Err()).Err()
		}
		<-k.done // it finished meanwhile
	}
	resp, st, stream := k.resp, k.st, k.stream
	defer func() {
		c.free(resp)
		*k = inprocCall{done: k.done}
		c.calls.Put(k)
	}()
	// The caller gave up as the answer came: gRPC would have answered so.
	if err := ctx.Err(); err != nil {
		return status.FromContextError(err).Err()
	}
	for _, o := range opts {
		switch o := o.(type) {
		case grpc.HeaderCallOption:
			*o.HeaderAddr = stream.received(st)
		case grpc.TrailerCallOption:
			*o.TrailerAddr = stream.receivedTrailer(st)
		case grpc.PeerCallOption:
			*o.PeerAddr = *c.peer
		}
	}
	if st != nil {
		return status.FromProto(st.Proto()).Err() // a copy: the handler's error stays its own
	}
	if n := bufLen(resp); n > c.maxRecv {
		return status.Errorf(codes.ResourceExhausted, "grpc: received message larger than max (%d vs. %d)", n, c.maxRecv)
	}
	if err := decode(resp, reply); err != nil {
		return status.Errorf(codes.Internal, "grpc: failed to unmarshal the received message: %v", err)
	}
	return nil
}

// serve is the server's side of a call: a context as a gRPC server makes one, server stats,
// the interceptors and the handler, and the reply encoded (nil when st is set).
func (c *inprocConn) serve(cctx context.Context, method string, md metadata.MD, req *[]byte) (resp *[]byte, st *status.Status, stream *inprocStream) {
	sc := &inprocServerCall{inprocStream: inprocStream{method: method}, c: c, req: req}
	stream = &sc.inprocStream
	sm, ok := strings.CutPrefix(method, "/")
	pos := strings.LastIndexByte(sm, '/')
	if !ok || pos < 0 {
		return nil, status.Newf(codes.Unimplemented, "malformed method name: %q", method), stream
	}
	m, known := c.methods[method]
	if !known {
		if service := sm[:pos]; !c.services[service] {
			return nil, status.Newf(codes.Unimplemented, "unknown service %v", service), stream
		}
		return nil, status.Newf(codes.Unimplemented, "unknown method %v for service %v", sm[pos+1:], sm[:pos]), stream
	}

	// The handler's context has the caller's deadline and is cancelled with the caller's,
	// but none of its values: only what travels on the wire. As on a gRPC server, the end
	// of the caller's context (its deadline too) cancels the handler's: over the wire the
	// client's RST_STREAM arrives before the server's own timer, set later, fires.
	base, cancel := context.WithCancel(context.Background())
	defer cancel()
	stop := context.AfterFunc(cctx, cancel)
	defer stop()
	var ctx context.Context = base
	if dl, ok := cctx.Deadline(); ok {
		sc.hctx = handlerContext{Context: base, deadline: dl}
		ctx = &sc.hctx
	}
	ctx = peer.NewContext(ctx, c.peer)
	ctx = metadata.NewIncomingContext(ctx, md)

	var appErr error
	if sh := c.serverStats; sh != nil {
		ctx = sh.TagRPC(ctx, &stats.RPCTagInfo{FullMethodName: method})
		sh.HandleRPC(ctx, &stats.InHeader{FullMethod: method, RemoteAddr: c.peer.Addr, LocalAddr: c.peer.LocalAddr, Header: md})
		begin := &stats.Begin{BeginTime: time.Now()}
		sh.HandleRPC(ctx, begin)
		defer func() {
			sh.HandleRPC(ctx, &stats.End{BeginTime: begin.BeginTime, EndTime: time.Now(), Error: appErr})
		}()
	}
	ctx = grpc.NewContextWithServerTransportStream(ctx, stream)
	reply, appErr := m.handler(m.impl, ctx, sc.decode, c.serverInt)
	if appErr == nil {
		resp, appErr = c.encode(reply)
	}
	if appErr == nil {
		return resp, nil, stream
	}
	st, isStatus := status.FromError(appErr)
	if !isStatus {
		// As grpc-go's server: a non-status error is Unknown, a context error its code.
		st = status.FromContextError(appErr)
		appErr = st.Err()
	}
	return nil, st, stream
}

// abandoned is what a gRPC server records of a call whose client sent the headers and then
// failed to marshal the request: the call starts and is cancelled before its handler runs
// (no interceptor sees it, the server's span ends CANCELLED).
func (c *inprocConn) abandoned(method string, md metadata.MD) {
	sh := c.serverStats
	if _, known := c.methods[method]; sh == nil || !known {
		return
	}
	ctx := metadata.NewIncomingContext(peer.NewContext(context.Background(), c.peer), md)
	ctx = sh.TagRPC(ctx, &stats.RPCTagInfo{FullMethodName: method})
	sh.HandleRPC(ctx, &stats.InHeader{FullMethod: method, RemoteAddr: c.peer.Addr, LocalAddr: c.peer.LocalAddr, Header: md})
	begin := time.Now()
	sh.HandleRPC(ctx, &stats.Begin{BeginTime: begin})
	sh.HandleRPC(ctx, &stats.End{BeginTime: begin, EndTime: time.Now(), Error: status.Error(codes.Canceled, context.Canceled.Error())})
}

// inprocServerCall is what serve allocates for a call, in one piece: the stream, the
// handler's context when the caller has a deadline, and what decode reads.
type inprocServerCall struct {
	inprocStream
	hctx handlerContext
	c    *inprocConn
	req  *[]byte
}

// decode is the handler's dec: the request, as a gRPC server decodes it.
func (sc *inprocServerCall) decode(v any) error {
	if n := bufLen(sc.req); n > sc.c.maxRecv {
		return status.Errorf(codes.ResourceExhausted, "grpc: received message larger than max (%d vs. %d)", n, sc.c.maxRecv)
	}
	if err := decode(sc.req, v); err != nil {
		return status.Errorf(codes.Internal, "grpc: failed to unmarshal the received message: %v", err)
	}
	return nil
}

// handlerContext reports the caller's deadline; it ends when the caller's context does.
type handlerContext struct {
	context.Context
	deadline time.Time
}

func (c handlerContext) Deadline() (time.Time, bool) { return c.deadline, true }

// encode is what grpc-go does with its proto codec (encoding/proto): the same size, the
// same options, the same errors, as Internal; but into a buffer of the channel's own pool,
// reused once decoded, where the codec allocated a buffer and its wrappers for each message.
func (c *inprocConn) encode(msg any) (*[]byte, error) {
	if msg == nil {
		return nil, nil
	}
	vv := messageV2Of(msg)
	if vv == nil {
		return nil, status.Errorf(codes.Internal, "grpc: error while marshaling: %v", fmt.Sprintf("proto: failed to marshal, message is %T, want proto.Message", msg))
	}
	size := protov2.Size(vv)
	b, _ := c.bufs.Get().(*[]byte)
	if b == nil {
		b = new([]byte)
	}
	// UseCachedSize: the size was just computed, as the codec does.
	out, err := protov2.MarshalOptions{UseCachedSize: true}.MarshalAppend(slices.Grow((*b)[:0], size), vv)
	if err != nil {
		c.free(b)
		return nil, status.Errorf(codes.Internal, "grpc: error while marshaling: %v", err.Error())
	}
	*b = out
	return b, nil
}

// decode is grpc-go's proto codec's Unmarshal. Unmarshal copies what it keeps, so the
// buffer can be reused.
func decode(b *[]byte, v any) error {
	vv := messageV2Of(v)
	if vv == nil {
		return fmt.Errorf("failed to unmarshal, message is %T, want proto.Message", v)
	}
	var data []byte
	if b != nil {
		data = *b
	}
	return protov2.Unmarshal(data, vv)
}

// free returns an encoded message's buffer to the pool; one grown for a large message is
// left to the collector rather than kept.
func (c *inprocConn) free(b *[]byte) {
	if b == nil || cap(*b) > 64<<10 {
		return
	}
	*b = (*b)[:0]
	c.bufs.Put(b)
}

func bufLen(b *[]byte) int {
	if b == nil {
		return 0
	}
	return len(*b)
}

// messageV2Of is grpc-go's proto codec's: APIv1 messages are adapted.
func messageV2Of(v any) protov2.Message {
	switch v := v.(type) {
	case protoadapt.MessageV1:
		return protoadapt.MessageV2Of(v)
	case protoadapt.MessageV2:
		return v
	}
	return nil
}

// inprocStream is the server transport stream a handler finds in its context
// (grpc.Method, grpc.SetHeader, grpc.SetTrailer).
type inprocStream struct {
	method          string
	header, trailer metadata.MD
}

func (s *inprocStream) Method() string { return s.method }

func (s *inprocStream) SetHeader(md metadata.MD) error {
	s.header = metadata.Join(s.header, md)
	return nil
}

func (s *inprocStream) SendHeader(md metadata.MD) error { return s.SetHeader(md) }

func (s *inprocStream) SetTrailer(md metadata.MD) error {
	s.trailer = metadata.Join(s.trailer, md)
	return nil
}

// received is the header metadata a gRPC client gets: the handler's with the content type,
// or none when the call failed without the handler setting any (a trailers-only answer).
func (s *inprocStream) received(st *status.Status) metadata.MD {
	if st != nil && len(s.header) == 0 {
		return metadata.MD{}
	}
	return metadata.Join(s.header, metadata.Pairs("content-type", "application/grpc"))
}

// receivedTrailer is the trailer metadata a gRPC client gets: the handler's, with the
// content type when the answer was trailers-only and the status's details as grpc-go's
// server sends them.
func (s *inprocStream) receivedTrailer(st *status.Status) metadata.MD {
	md := s.trailer.Copy()
	if md == nil {
		md = metadata.MD{}
	}
	if st == nil {
		return md
	}
	if len(s.header) == 0 {
		md.Append("content-type", "application/grpc")
	}
	if p := st.Proto(); len(p.GetDetails()) > 0 {
		if b, err := protov2.Marshal(p); err == nil {
			md.Append("grpc-status-details-bin", string(b))
		}
	}
	return md
}

// reservedHeader: metadata a gRPC client does not send (grpc-go's transport drops it).
func reservedHeader(k string) bool {
	if k != "" && k[0] == ':' {
		return true
	}
	switch k {
	case "content-type", "user-agent", "grpc-message-type", "grpc-encoding", "grpc-message", "grpc-status", "grpc-timeout", "te":
		return true
	}
	return false
}

// validateMD refuses what a gRPC client refuses to send (grpc-go's internal/metadata).
func validateMD(md metadata.MD) error {
	for k, vals := range md {
		if k == "" {
			return fmt.Errorf("there is an empty key in the header")
		}
		if k[0] == ':' {
			continue
		}
		for i := 0; i < len(k); i++ {
			r := k[i]
			if !(r >= 'a' && r <= 'z') && !(r >= '0' && r <= '9') && r != '.' && r != '-' && r != '_' {
				return fmt.Errorf("header key %q contains illegal characters not in [0-9a-z-_.]", k)
			}
		}
		if strings.HasSuffix(k, "-bin") {
			continue
		}
		for _, v := range vals {
			for i := 0; i < len(v); i++ {
				if v[i] < 0x20 || v[i] > 0x7E {
					return fmt.Errorf("header key %q contains value with non-printable ASCII characters", k)
				}
			}
		}
	}
	return nil
}

// chainUnaryServer is grpc-go's chaining: the first interceptor outermost.
func chainUnaryServer(ints []grpc.UnaryServerInterceptor) grpc.UnaryServerInterceptor {
	switch len(ints) {
	case 0:
		return nil
	case 1:
		return ints[0]
	}
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		return ints[0](ctx, req, info, chainedServerHandler(ints, 0, info, handler))
	}
}

func chainedServerHandler(ints []grpc.UnaryServerInterceptor, curr int, info *grpc.UnaryServerInfo, final grpc.UnaryHandler) grpc.UnaryHandler {
	if curr == len(ints)-1 {
		return final
	}
	return func(ctx context.Context, req any) (any, error) {
		return ints[curr+1](ctx, req, info, chainedServerHandler(ints, curr+1, info, final))
	}
}

// chainUnaryClient is grpc-go's chaining of client interceptors.
func chainUnaryClient(ints []grpc.UnaryClientInterceptor) grpc.UnaryClientInterceptor {
	switch len(ints) {
	case 0:
		return nil
	case 1:
		return ints[0]
	}
	return func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		return ints[0](ctx, method, req, reply, cc, chainedClientInvoker(ints, 0, invoker), opts...)
	}
}

func chainedClientInvoker(ints []grpc.UnaryClientInterceptor, curr int, final grpc.UnaryInvoker) grpc.UnaryInvoker {
	if curr == len(ints)-1 {
		return final
	}
	return func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, opts ...grpc.CallOption) error {
		return ints[curr+1](ctx, method, req, reply, cc, chainedClientInvoker(ints, curr+1, final), opts...)
	}
}
