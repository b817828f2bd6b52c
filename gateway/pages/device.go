package pages

import (
	"net/http"
	"net/url"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	authnv1 "github.com/portcullis-dev/portcullis/proto/portcullis/authn/v1"
)

// maxUserCode bounds the typed user code ("WDJB-MJHT", with room for spaces).
const maxUserCode = 64

type devicePage struct {
	UserCode string
	Error    string
}

type deviceConfirmPage struct {
	Device   *authnv1.DeviceAuthorization
	UserCode string
}

type deviceDonePage struct {
	Approved bool
	Device   *authnv1.DeviceAuthorization
}

const badDeviceCode = "That code is not valid or has expired."

// deviceReturn is where sign-in comes back to when the session ended on a device page: the
// form again, with the code already typed.
func deviceReturn(userCode string) string {
	if userCode == "" {
		return "/device"
	}
	return "/device?user_code=" + url.QueryEscape(userCode)
}

func (p *Pages) handleDeviceForm(w http.ResponseWriter, r *http.Request) {
	userCode := strings.TrimSpace(r.URL.Query().Get("user_code"))
	if len(userCode) > maxUserCode {
		userCode = ""
	}
	ctx, cancel := p.ctx(r)
	defer cancel()
	token := p.sessionToken(r)
	acct := p.signedIn(ctx, w, r, token, deviceReturn(userCode))
	if acct == nil {
		return
	}
	p.renderDeviceForm(w, r, http.StatusOK, token, acct, userCode, "")
}

func (p *Pages) renderDeviceForm(w http.ResponseWriter, r *http.Request, code int, token string, acct *authnv1.GetAccountResponse, userCode, msg string) {
	p.render(w, r, code, "device", view{
		Title: "Connect a device", Subject: acct.GetIdentity().GetSubject(), CSRF: csrfFor(token),
		Page: devicePage{UserCode: userCode, Error: msg},
	})
}

// deviceForm reads the user code of the device forms, after postAuth.
func (p *Pages) deviceForm(w http.ResponseWriter, r *http.Request) (string, bool) {
	userCode, ok := field(r, "user_code", maxUserCode)
	if !ok {
		p.tooLong(w, r, "code")
		return "", false
	}
	return strings.TrimSpace(userCode), true
}

func (p *Pages) handleDeviceLookup(w http.ResponseWriter, r *http.Request) {
	token, ok := p.postAuth(w, r)
	if !ok {
		return
	}
	userCode, ok := p.deviceForm(w, r)
	if !ok {
		return
	}
	ctx, cancel := p.ctx(r)
	defer cancel()
	acct := p.signedIn(ctx, w, r, token, deviceReturn(userCode))
	if acct == nil {
		return
	}
	if userCode == "" {
		p.renderDeviceForm(w, r, http.StatusBadRequest, token, acct, "", "Enter the code that portcullis login shows.")
		return
	}
	resp, err := p.acct.LookupDevice(ctx, &authnv1.LookupDeviceRequest{WebSessionToken: token, UserCode: userCode, RemoteAddr: p.opt.ClientAddr(r)})
	if err != nil {
		if status.Code(err) == codes.NotFound {
			p.renderDeviceForm(w, r, http.StatusNotFound, token, acct, userCode, badDeviceCode)
			return
		}
		p.grpcError(w, r, "LookupDevice", err, deviceReturn(userCode))
		return
	}
	d := resp.GetDeviceAuthorization()
	if d.GetUserCode() != "" {
		userCode = d.GetUserCode()
	}
	p.render(w, r, http.StatusOK, "device_confirm", view{
		Title: "Approve this device?", Subject: acct.GetIdentity().GetSubject(), CSRF: csrfFor(token),
		Page: deviceConfirmPage{Device: d, UserCode: userCode},
	})
}

func (p *Pages) handleDeviceDecide(w http.ResponseWriter, r *http.Request) {
	token, ok := p.postAuth(w, r)
	if !ok {
		return
	}
	userCode, ok := p.deviceForm(w, r)
	if !ok {
		return
	}
	var approve bool
	switch r.PostForm.Get("decision") {
	case "approve":
		approve = true
	case "deny":
	default:
		p.fail(w, r, http.StatusBadRequest, problem{Heading: "Bad request", Message: "Choose Approve or Deny.", Link: deviceReturn(userCode), LinkText: "Back to the device form"})
		return
	}
	ctx, cancel := p.ctx(r)
	defer cancel()
	acct := p.signedIn(ctx, w, r, token, deviceReturn(userCode))
	if acct == nil {
		return
	}
	if userCode == "" {
		p.renderDeviceForm(w, r, http.StatusBadRequest, token, acct, "", "Enter the code that portcullis login shows.")
		return
	}
	resp, err := p.acct.DecideDevice(ctx, &authnv1.DecideDeviceRequest{WebSessionToken: token, UserCode: userCode, Approve: approve, RemoteAddr: p.opt.ClientAddr(r)})
	if err != nil {
		if status.Code(err) == codes.NotFound {
			p.renderDeviceForm(w, r, http.StatusNotFound, token, acct, userCode, badDeviceCode)
			return
		}
		p.grpcError(w, r, "DecideDevice", err, deviceReturn(userCode))
		return
	}
	title := "Device denied"
	if approve {
		title = "Device approved"
	}
	p.render(w, r, http.StatusOK, "device_done", view{
		Title: title, Subject: acct.GetIdentity().GetSubject(), CSRF: csrfFor(token),
		Page: deviceDonePage{Approved: approve, Device: resp.GetDeviceAuthorization()},
	})
}
