package events

// DecodeData decodes e's data into the value Apply reads for e's type, so
// that a replay can decode events on other goroutines than the one that
// folds them (see [State.ApplyDecoded]). It returns nil, and no error, for
// a type whose data Apply does not read on its hot path, and for an event
// without data. The value it returns belongs to the caller.
func DecodeData(e *Event) (any, error) {
	if len(e.Data) == 0 {
		return nil, nil
	}
	v := DataOf(e.Type)
	if v == nil {
		return nil, nil
	}
	if err := e.Decode(v); err != nil {
		return nil, err
	}
	return v, nil
}

// DataOf returns a pointer to a new zero value of the type DecodeData
// decodes the data of events of type typ into, or nil for a type whose
// data Apply does not read on its hot path. It lets a replay decode the
// data with another decoder, as long as that decoder reads it exactly as
// [Event.Decode] does.
func DataOf(typ string) any {
	switch typ {
	case ContainerCreating:
		return new(CreatingData)
	case ContainerCreated:
		return new(CreatedData)
	case ContainerStarted:
		return new(StartedData)
	case ContainerStopping:
		return new(StoppingData)
	case ContainerExited:
		return new(Exit)
	case ContainerCreateFailed, ContainerRemoveFailed, ContainerUnknown:
		return new(FailureData)
	case ContainerExecStarted:
		return new(ExecStartedData)
	case ContainerExecExited:
		return new(ExecExit)
	case NodeCommandCompleted:
		return new(CommandCompletedData)
	}
	return nil
}

// ApplyDecoded is Apply for an event whose data was decoded by DecodeData:
// data must be what DecodeData returned for e, or nil, in which case Apply
// decodes the data itself. The state it leaves and the error it returns
// are Apply's. The state may keep data: the caller must not change it
// afterwards.
func (s *State) ApplyDecoded(e *Event, data any) error { return s.apply(e, data) }

// decodeAs returns the data DecodeData decoded ahead (pre), or e's data
// decoded into a new T when pre holds none of that type.
func decodeAs[T any](e *Event, pre any) (*T, error) {
	if p, ok := pre.(*T); ok {
		return p, nil
	}
	p := new(T)
	if err := e.Decode(p); err != nil {
		return nil, err
	}
	return p, nil
}
