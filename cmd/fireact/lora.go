package main

import (
	"fmt"
	"strconv"
	"strings"
)

// parseLoraSpec splits "FILE" or "FILE:SCALE" (scale defaults to 1).
func parseLoraSpec(spec string) (string, float32, error) {
	if i := strings.LastIndexByte(spec, ':'); i > 0 {
		if s, err := strconv.ParseFloat(spec[i+1:], 32); err == nil {
			return spec[:i], float32(s), nil
		}
	}
	if spec == "" {
		return "", 0, fmt.Errorf("empty --lora value")
	}
	return spec, 1, nil
}
