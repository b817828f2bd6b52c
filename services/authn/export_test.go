package authn

// SetCompare swaps the bcrypt comparison l runs, so tests can count bcrypt work by cost
// instead of timing it.
func SetCompare(l *BcryptLimiter, f func(hash, password []byte) error) { l.compare = f }
