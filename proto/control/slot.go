package control

import (
	"fmt"
	"strconv"
)

// Fencing slot of an fnbox instance, shared by fnbox and the deployer that
// gives it (docs/delivery.md, "Transactional ids").
//
// An exactly-once function's transactional id is <consumer group>.<slot>.
// The deployer gives a restarted instance the slot of the one it replaces,
// so the new instance's InitProducerID fences the dead one and the broker
// aborts its open transaction at once; two live instances of a deployment
// never hold the same slot (an update's new version runs beside the old
// one under another slot), so they never fence each other.
const (
	// SlotFlag is fnbox's flag (env SlotEnv) carrying the slot, a
	// non-negative integer.
	SlotFlag = "slot"
	// SlotEnv is the env fallback of SlotFlag.
	SlotEnv = "BUTTER_SLOT"
)

// TransactionalID is the transactional id of group's exactly-once
// producer in slot.
func TransactionalID(group string, slot int) string {
	return group + "." + strconv.Itoa(slot)
}

// ParseSlot parses a SlotFlag value; "" is no slot (-1).
func ParseSlot(s string) (int, error) {
	if s == "" {
		return -1, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return -1, fmt.Errorf("parse --%s %q: want a non-negative integer", SlotFlag, s)
	}
	return n, nil
}
