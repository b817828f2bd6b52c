package sessions

import "context"

// Flush writes the pending last uses now, as the background loop does on its tick.
func (m *Manager) Flush(ctx context.Context) error { return m.lastUse.Flush(ctx) }
