package detect

import "slices"

// quantile estimates one percentile of a stream in constant memory and
// time with the P² algorithm (Jain and Chlamtac, 1985): five markers whose
// heights are adjusted by piecewise-parabolic interpolation as values
// arrive. It keeps no samples, so a baseline per device and rule costs a
// few dozen bytes however long the device lives.
type quantile struct {
	p   float64
	n   int
	q   [5]float64 // marker heights
	pos [5]float64 // actual marker positions, 1-based
	des [5]float64 // desired marker positions
	inc [5]float64 // desired position increments
}

func newQuantile(p float64) quantile {
	return quantile{p: p, inc: [5]float64{0, p / 2, p, (1 + p) / 2, 1}}
}

// add records x.
func (e *quantile) add(x float64) {
	if e.n < 5 {
		e.q[e.n] = x
		e.n++
		if e.n == 5 {
			slices.Sort(e.q[:])
			p := e.p
			e.pos = [5]float64{1, 2, 3, 4, 5}
			e.des = [5]float64{1, 1 + 2*p, 1 + 4*p, 3 + 2*p, 5}
		}
		return
	}
	var k int
	switch {
	case x < e.q[0]:
		e.q[0] = x
		k = 0
	case x >= e.q[4]:
		e.q[4] = x
		k = 3
	default:
		for i := 1; i < 5; i++ {
			if x < e.q[i] {
				k = i - 1
				break
			}
		}
	}
	for i := k + 1; i < 5; i++ {
		e.pos[i]++
	}
	for i := range e.des {
		e.des[i] += e.inc[i]
	}
	for i := 1; i <= 3; i++ {
		d := e.des[i] - e.pos[i]
		if (d >= 1 && e.pos[i+1]-e.pos[i] > 1) || (d <= -1 && e.pos[i-1]-e.pos[i] < -1) {
			s := 1.0
			if d < 0 {
				s = -1
			}
			qp := e.parabolic(i, s)
			if e.q[i-1] < qp && qp < e.q[i+1] {
				e.q[i] = qp
			} else {
				j := i + int(s)
				e.q[i] += s * (e.q[j] - e.q[i]) / (e.pos[j] - e.pos[i])
			}
			e.pos[i] += s
		}
	}
	e.n++
}

func (e *quantile) parabolic(i int, s float64) float64 {
	q, n := &e.q, &e.pos
	return q[i] + s/(n[i+1]-n[i-1])*((n[i]-n[i-1]+s)*(q[i+1]-q[i])/(n[i+1]-n[i])+(n[i+1]-n[i]-s)*(q[i]-q[i-1])/(n[i]-n[i-1]))
}

// value is the current estimate; with fewer than five values it is the
// exact percentile of those seen (nearest rank).
func (e *quantile) value() float64 {
	if e.n == 0 {
		return 0
	}
	if e.n < 5 {
		s := slices.Clone(e.q[:e.n])
		slices.Sort(s)
		i := int(e.p * float64(e.n-1))
		return s[i]
	}
	return e.q[2]
}
