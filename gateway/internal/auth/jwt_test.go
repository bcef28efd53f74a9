package auth

import (
	"encoding/base64"
	"testing"
	"time"
)

func seg(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

func TestParseTokenClaims(t *testing.T) {
	tok, err := ParseToken(seg(`{"alg":"RS256","kid":"k"}`) + "." + seg(`{"iss":"i","aud":"a","exp":4102444800,"scp":"x y","sub":"s"}`) + "." + seg("sig"))
	if err != nil {
		t.Fatal(err)
	}
	if tok.Alg != "RS256" || tok.Kid != "k" || tok.Subject() != "s" || len(tok.Scopes()) != 2 {
		t.Fatalf("got %+v", tok)
	}
	if err := tok.CheckClaims("i", "a", time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := tok.CheckClaims("i", "b", time.Now()); err != ErrAudience {
		t.Fatalf("audience: %v", err)
	}
	if err := tok.CheckClaims("j", "a", time.Now()); err != ErrIssuer {
		t.Fatalf("issuer: %v", err)
	}
	if err := tok.Verify(nil); err == nil {
		t.Fatal("verified without a key")
	}
	for _, bad := range []string{"", "a.b", "a.b.c.d", seg("{}") + "." + seg("[]") + ".", seg(`{"crit":["x"]}`) + "." + seg("{}") + "."} {
		if _, err := ParseToken(bad); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}

// FuzzParseToken checks that no token crashes the parser or the claim
// checks.
func FuzzParseToken(f *testing.F) {
	f.Add(seg(`{"alg":"RS256","kid":"k"}`) + "." + seg(`{"iss":"i","aud":["a"],"exp":1e10,"scope":"x"}`) + "." + seg("sig"))
	f.Add(seg(`{"alg":"ES256"}`) + "." + seg(`{"exp":"soon","nbf":-1e300,"scp":[1,"a"]}`) + ".")
	f.Add("..")
	f.Fuzz(func(t *testing.T, s string) {
		tok, err := ParseToken(s)
		if err != nil {
			return
		}
		_ = tok.CheckClaims("i", "a", time.Now())
		_ = tok.Scopes()
		_ = tok.Audience()
		_ = tok.Verify(nil)
	})
}
