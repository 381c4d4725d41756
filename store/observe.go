package store

import "github.com/relaygate/relaygate/event"

// Observer sees what the store records: every event it accepts (after the
// per-source budget, whether or not the write queue then has room) and
// every audit entry once written. Both methods must return at once: they
// run on the data path.
type Observer interface {
	ObserveEvent(event.Event)
	ObserveAudit(AuditEntry)
}

// SetObserver makes o see every event and audit entry from now on; nil
// removes it.
func (s *Store) SetObserver(o Observer) {
	if o == nil {
		s.observer.Store(nil)
		return
	}
	s.observer.Store(&o)
}

func (s *Store) observeEvent(e event.Event) {
	if o := s.observer.Load(); o != nil {
		(*o).ObserveEvent(e)
	}
}

func (s *Store) observeAudit(a AuditEntry) {
	if o := s.observer.Load(); o != nil {
		(*o).ObserveAudit(a)
	}
}
