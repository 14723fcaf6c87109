package render

import networkingv1 "k8s.io/api/networking/v1"

// SetBulkMin sets how many new Ingresses make a build rebuild its sorted
// lists at the end (bulkMin), for the incremental tests to take both
// paths; restore puts the old value back.
func SetBulkMin(n int) (restore func()) {
	old := bulkMin
	bulkMin = n
	return func() { bulkMin = old }
}

// RegexModeOf says whether the Ingress's paths are read as regular
// expressions.
func RegexModeOf(ing *networkingv1.Ingress, compat Compat) bool {
	return parseIngress(ing, compat).ann.useRegex == True
}
