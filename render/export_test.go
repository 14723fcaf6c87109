package render

// SetBulkMin sets how many new Ingresses make a build rebuild its sorted
// lists at the end (bulkMin), for the incremental tests to take both
// paths; restore puts the old value back.
func SetBulkMin(n int) (restore func()) {
	old := bulkMin
	bulkMin = n
	return func() { bulkMin = old }
}
