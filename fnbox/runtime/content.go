package runtime

import (
	"mime"
	"strings"
)

// IsJSON reports whether a content type is JSON: application/json,
// text/json or any +json type, parameters ignored.
func IsJSON(contentType string) bool {
	mt := mediaType(contentType)
	return mt == "application/json" || mt == "text/json" || strings.HasSuffix(mt, "+json")
}

// IsText reports whether data of a content type is text a handler should
// get as a string. Unstated counts as text: callers check the bytes are
// valid UTF-8 first.
func IsText(contentType string) bool {
	mt := mediaType(contentType)
	if mt == "" || strings.HasPrefix(mt, "text/") || IsJSON(contentType) || strings.HasSuffix(mt, "xml") ||
		mt == "application/x-www-form-urlencoded" || mt == "application/javascript" {
		return true
	}
	_, params, _ := mime.ParseMediaType(contentType)
	return params["charset"] != ""
}

func mediaType(contentType string) string {
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		return strings.ToLower(strings.TrimSpace(contentType))
	}
	return mt
}
