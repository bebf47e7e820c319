package bus

import "testing"

func BenchmarkDecodeRequest(b *testing.B) {
	body := []byte(`{"session_id":"6f1c3f5e-8a53-4b1e-9a51-2d0c8f0e7a11"}`)
	b.ReportAllocs()
	for b.Loop() {
		var r SessionIDRequest
		if err := DecodeRequest(body, &r, "session_id"); err != nil {
			b.Fatal(err)
		}
	}
}
