package serve

import (
	"encoding/json"
	"fmt"
	"net/http"
)

// Error types, as OpenAI names them in error responses.
const (
	ErrTypeInvalidRequest = "invalid_request_error"
	ErrTypeAuthentication = "authentication_error"
	ErrTypeNotFound       = "not_found_error"
	ErrTypeServer         = "server_error"
	ErrTypeTimeout        = "timeout_error"
)

// APIError is the body of every error response, in OpenAI's shape
// ({"error":{"message","type","code"}}), so that OpenAI clients surface the
// message instead of a decoding failure.
type APIError struct {
	Status  int    `json:"-"`
	Message string `json:"message"`
	Type    string `json:"type"`
	Param   string `json:"param,omitempty"`
	Code    string `json:"code,omitempty"`
}

// Error implements error.
func (e *APIError) Error() string {
	return fmt.Sprintf("serve: %d %s: %s", e.Status, e.Type, e.Message)
}

// errorBody is the JSON envelope of an APIError.
type errorBody struct {
	Error *APIError `json:"error"`
}

func apiErrorf(status int, typ, code, format string, args ...any) *APIError {
	return &APIError{Status: status, Type: typ, Code: code, Message: fmt.Sprintf(format, args...)}
}

func badRequest(format string, args ...any) *APIError {
	return apiErrorf(http.StatusBadRequest, ErrTypeInvalidRequest, "invalid_request", format, args...)
}

// writeError writes e as a JSON error response.
func writeError(w http.ResponseWriter, e *APIError) {
	if e.Status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="fireact"`)
	}
	writeJSON(w, e.Status, errorBody{Error: e})
}

// writeJSON writes v as the response body with the given status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		// Every response type here is plain data; failing to marshal one is a bug.
		status = http.StatusInternalServerError
		b = []byte(`{"error":{"message":"internal error: cannot encode the response","type":"server_error"}}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}
