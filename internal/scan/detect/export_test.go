package detect

// Validate exposes validate to the tests of package detect_test.
func Validate(r *Rule) error {
	_, err := r.validate()
	return err
}
