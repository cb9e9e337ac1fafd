package hf

// Llama3RopeFactorsForTest exposes the rope_freqs computation to the
// external tests.
func Llama3RopeFactorsForTest(c *CheckpointConfig) []float32 {
	return llama3RopeFactors(c.RopeTheta, c.HeadDim, c.RopeScaling)
}
