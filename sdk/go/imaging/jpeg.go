package imaging

// A baseline JPEG decoder written from ITU-T T.81 (ISO/IEC 10918-1) and JFIF, with scaled
// decoding in the DCT domain: at scale N/8 (N = 8, 4, 2, 1) each 8×8 block becomes N×N
// samples through an N-point IDCT of its N×N lowest-frequency coefficients. Every coefficient
// is still entropy-decoded, so corrupt data is detected the same way at every scale.

import (
	"encoding/binary"
	"fmt"
	"math"
)

// zigzag[k] is the natural (row-major) index of the k-th coefficient in zig-zag order.
var zigzag = [64]uint8{
	0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5,
	12, 19, 26, 33, 40, 48, 41, 34, 27, 20, 13, 6, 7, 14, 21, 28,
	35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51,
	58, 59, 52, 45, 38, 31, 39, 46, 53, 60, 61, 54, 47, 55, 62, 63,
}

const (
	fastBits = 10
	fastMask = 1<<fastBits - 1
	fastEOB  = 0x80
	skipBits = 12
	skipEOB  = 1 << 16
)

// huffTable is a Huffman table (T.81 annex C, F.2.2.3) with MSB-first codes.
type huffTable struct {
	present bool
	// fast[p] for a fastBits-bit prefix p: code length<<8 | value, 0 when the code is longer.
	fast [1 << fastBits]uint16
	// fastAC[p]: when p holds both a code and all its magnitude bits, the coefficient (AC) or
	// difference (DC) value<<16 | run<<8 | bits consumed (low 5 bits); fastEOB | bits for an
	// AC end of block; 0 otherwise (longer codes, ZRL).
	fastAC [1 << fastBits]int32
	// skip[p] for a skipBits-bit prefix p of AC data: as many whole (code, magnitude) symbols
	// as p holds, for coefficients that do not reach the output: bits consumed | zig-zag
	// positions advanced<<8 | skipEOB when the last is an end of block; 0 when p holds no
	// whole symbol or starts with ZRL. Built on first use at a reduced scale.
	skip      [1 << skipBits]uint32
	skipBuilt bool
	maxcode   [17]int32 // largest code of each length, -1 when there is none
	delta     [17]int32 // index in vals of a code of each length, minus the code
	vals      [256]uint8
}

func (t *huffTable) build(counts, vals []byte, dc bool) bool {
	*t = huffTable{}
	copy(t.vals[:], vals)
	code, k := 0, 0
	for l := 1; l <= 16; l++ {
		c := int(counts[l-1])
		t.delta[l] = int32(k - code)
		t.maxcode[l] = -1
		if c > 0 {
			t.maxcode[l] = int32(code + c - 1)
		}
		for i := 0; i < c; i, k, code = i+1, k+1, code+1 {
			if code >= 1<<l {
				return false // over-subscribed
			}
			if l <= fastBits {
				shift := fastBits - l
				for f := code << shift; f < (code+1)<<shift; f++ {
					t.fast[f] = uint16(l<<8) | uint16(vals[k])
				}
			}
		}
		code <<= 1
	}
	for f := range t.fast {
		e := t.fast[f]
		l, rs := int(e>>8), int(e&255)
		run, sz := rs>>4, rs&15
		switch {
		case l == 0:
		case dc && rs <= 11 && l+rs <= fastBits:
			// DC: the difference (0 for a zero-length magnitude).
			bits := (f >> (fastBits - l - rs)) & (1<<rs - 1)
			t.fastAC[f] = extend(int32(bits), uint(rs))<<16 | int32(l+rs)
		case !dc && rs == 0:
			t.fastAC[f] = fastEOB | int32(l)
		case !dc && sz != 0 && l+sz <= fastBits:
			bits := (f >> (fastBits - l - sz)) & (1<<sz - 1)
			v := extend(int32(bits), uint(sz))
			t.fastAC[f] = v<<16 | int32(run<<8|(l+sz))
		}
	}
	t.present = true
	return true
}

// buildSkip fills t.skip from t.fast.
func (t *huffTable) buildSkip() {
	for v := range t.skip {
		pos, adv, eob := 0, 0, 0
		for {
			rem := skipBits - pos
			e := t.fast[((v<<pos)&(1<<skipBits-1))>>(skipBits-fastBits)]
			l, rs := int(e>>8), int(e&255)
			r, sz := rs>>4, rs&15
			if l == 0 || l+sz > rem || rs == 0xf0 {
				break
			}
			pos += l + sz
			if rs == 0 {
				eob = skipEOB
				break
			}
			adv += r + 1
		}
		t.skip[v] = 0
		if pos > 0 {
			t.skip[v] = uint32(pos | adv<<8 | eob)
		}
	}
	t.skipBuilt = true
}

// slow decodes a code longer than fastBits; acc holds n >= 16 valid bits. It returns the
// value (or -1 for an invalid code) and the bits left.
func (t *huffTable) slow(acc uint64, n uint) (int, uint) {
	for l := uint(fastBits + 1); l <= 16; l++ {
		code := int32(acc>>((n-l)&63)) & (1<<l - 1)
		if code <= t.maxcode[l] {
			i := code + t.delta[l]
			if i < 0 || i > 255 {
				return -1, n
			}
			return int(t.vals[i]), n - l
		}
	}
	return -1, n
}

// extend turns the s-bit magnitude v into a signed coefficient (T.81 F.2.2.1).
func extend(v int32, s uint) int32 {
	if s == 0 {
		return 0
	}
	if v < 1<<(s-1) {
		return v - 1<<s + 1
	}
	return v
}

type component struct {
	index        int // in jpegState.comp
	id, h, v, tq int
	td, ta       int
	bw, bh       int    // plane size in blocks
	plane        []byte // bw*N × bh*N samples
	stride       int
	dcpred       int32
	scanned      bool
}

type jpegState struct {
	data []byte
	pos  int    // entropy-coded data read position
	acc  uint64 // pending bits; the next one is bit n-1
	n    uint
	pad  uint // zero bits appended past the end of the scan data
	mark bool // reached a marker: feed zeros

	qset                                [4]bool
	frame                               bool
	ncomp, w, h, hmax, vmax, mcux, mcuy int
	restart                             int
	adobe                               bool
	adobeTransform                      byte
	comp                                [3]component
	n8                                  int // samples per block side: 8, 4, 2 or 1
	progressive                         bool
	eobrun                              int // progressive: blocks left of an end-of-band run
}

type jpegDecoder struct {
	jpegState
	dc, ac [4]huffTable
	q      [4][64]float32 // quantisation tables, zig-zag order
	qdc    [4]int32       // their DC entries
	idct   [8][8]float32  // idct[x][u] = C(u)/2·cos((2x+1)uπ/2N), x, u < N
	keep   [64]int8       // zig-zag index → natural index when inside N×N, else -1
	last   int            // the largest zig-zag index that reaches the output
	planes [3][]byte
	xmap   [3][]int32
	prog   [3]coefStore // progressive: the kept coefficients
	kidx   [64]int8     // progressive: zig-zag index → index in a block's N×N, or -1
	kept   uint64       // progressive: bit k set where kidx[k] >= 0
}

// bad reports corrupt data, in the words image/jpeg uses for its own FormatError.
func bad(what string) error { return FormatError("invalid JPEG format: " + what) }

func be16(b []byte) int { return int(b[0])<<8 | int(b[1]) }

// fill tops the bit buffer up to more than 56 bits, undoing FF00 stuffing and stopping at a
// marker, after which it feeds zeros. Runs of bytes without 0xFF are taken eight at a time.
func (d *jpegDecoder) fill(acc uint64, n uint) (uint64, uint) {
	data, p := d.data, d.pos
	if k := (63 - n) >> 3; p+8 <= len(data) && !d.mark {
		x := uint64(data[p])<<56 | uint64(data[p+1])<<48 | uint64(data[p+2])<<40 | uint64(data[p+3])<<32 |
			uint64(data[p+4])<<24 | uint64(data[p+5])<<16 | uint64(data[p+6])<<8 | uint64(data[p+7])
		// The high bit of each byte of ff is set where x has 0xFF.
		y := ^x
		ff := (y - 0x0101010101010101) & ^y & 0x8080808080808080
		if ff>>((64-8*k)&63) == 0 {
			d.pos = p + int(k)
			return acc<<((8*k)&63) | x>>((64-8*k)&63), n + 8*k
		}
	}
	for n <= 56 {
		var b byte
		if !d.mark && p < len(data) {
			b = data[p]
			if b == 0xff {
				if p+1 < len(data) && data[p+1] == 0 {
					p += 2
				} else {
					d.mark = true
					b = 0
					d.pad += 8
				}
			} else {
				p++
			}
		} else {
			d.pad += 8
		}
		acc = acc<<8 | uint64(b)
		n += 8
	}
	d.pos = p
	return acc, n
}

// scanBlock is one block of an MCU: block (mx*mh+dx, my*mv+dy) of component c.
type scanBlock struct {
	c              *component
	mh, mv, dx, dy int
}

// decodeScan decodes one scan starting at d.pos; on return d.pos is at or before the marker
// that follows it. The entropy decoding of every block is inline, the bit buffer in locals.
func (d *jpegDecoder) decodeScan(sc []*component) error {
	d.pad, d.mark = 0, false
	var blocks [10]scanBlock
	nb, mcuw, mcuh := 0, d.mcux, d.mcuy
	if len(sc) == 1 {
		// Non-interleaved: one block per MCU over the component's own extent.
		c := sc[0]
		cw := (d.w*c.h + d.hmax - 1) / d.hmax
		ch := (d.h*c.v + d.vmax - 1) / d.vmax
		mcuw, mcuh = (cw+7)/8, (ch+7)/8
		blocks[0] = scanBlock{c, 1, 1, 0, 0}
		nb = 1
	} else {
		for _, c := range sc {
			for v := 0; v < c.v; v++ {
				for h := 0; h < c.h; h++ {
					if nb < len(blocks) {
						blocks[nb] = scanBlock{c, c.h, c.v, h, v}
						nb++
					}
				}
			}
		}
	}
	for _, c := range sc {
		c.dcpred = 0
	}
	total := mcuw * mcuh
	N := d.n8
	keep := &d.keep
	var coef [64]float32
	var acc uint64
	var n uint
	mcu, rst := 0, 0
	for my := 0; my < mcuh; my++ {
		for mx := 0; mx < mcuw; mx++ {
			for bi := range blocks[:nb] {
				b := &blocks[bi]
				c := b.c
				bx, by := mx*b.mh+b.dx, my*b.mv+b.dy
				dct, act, q := &d.dc[c.td&3], &d.ac[c.ta&3], &d.q[c.tq&3]

				// DC difference.
				if n < 16 { // fill's common case inline (a call costs more than the work here)
					if p := d.pos; p+8 <= len(d.data) && !d.mark {
						x := binary.BigEndian.Uint64(d.data[p:])
						k := (63 - n) >> 3
						if y := ^x; ((y-0x0101010101010101)&^y&0x8080808080808080)>>((64-8*k)&63) == 0 {
							d.pos = p + int(k)
							acc, n = acc<<((8*k)&63)|x>>((64-8*k)&63), n+8*k
						} else {
							acc, n = d.fill(acc, n)
						}
					} else {
						acc, n = d.fill(acc, n)
					}
				}
				p := (acc >> ((n - fastBits) & 63)) & fastMask
				pred := c.dcpred
				if e := dct.fastAC[p]; e != 0 {
					n -= uint(e & 31)
					pred += e >> 16
				} else {
					var s int
					if e := dct.fast[p]; e != 0 {
						n -= uint(e >> 8)
						s = int(e & 255)
					} else {
						s, n = dct.slow(acc, n)
					}
					if s < 0 || s > 11 {
						return bad("invalid DC Huffman code")
					}
					if s > 0 {
						if n < uint(s) {
							acc, n = d.fill(acc, n)
						}
						n -= uint(s)
						pred += extend(int32(acc>>(n&63))&(1<<s-1), uint(s))
					}
				}
				pred = max(-32768, min(32767, pred)) // only corrupt data gets here; keep sums bounded
				c.dcpred = pred

				if N == 1 {
					// Only DC reaches the output: decode the AC codes without storing them.
					for k := 1; k < 64; {
						if n < 16 { // fill's common case inline (a call costs more than the work here)
							if p := d.pos; p+8 <= len(d.data) && !d.mark {
								x := binary.BigEndian.Uint64(d.data[p:])
								k := (63 - n) >> 3
								if y := ^x; ((y-0x0101010101010101)&^y&0x8080808080808080)>>((64-8*k)&63) == 0 {
									d.pos = p + int(k)
									acc, n = acc<<((8*k)&63)|x>>((64-8*k)&63), n+8*k
								} else {
									acc, n = d.fill(acc, n)
								}
							} else {
								acc, n = d.fill(acc, n)
							}
						}
						// Several whole symbols at once while they stay inside the block.
						if sk := act.skip[(acc>>((n-skipBits)&63))&(1<<skipBits-1)]; sk != 0 && k+int(sk>>8&255) < 64 {
							n -= uint(sk & 255)
							k += int(sk >> 8 & 255)
							if sk&skipEOB != 0 {
								break
							}
							continue
						}
						p := (acc >> ((n - fastBits) & 63)) & fastMask
						if fa := act.fastAC[p]; fa != 0 {
							n -= uint(fa & 31)
							if fa&fastEOB != 0 {
								break
							}
							k += int(fa>>8&15) + 1
							if k > 64 {
								return bad("AC coefficient index out of range")
							}
							continue
						}
						var rs int
						if e := act.fast[p]; e != 0 {
							n -= uint(e >> 8)
							rs = int(e & 255)
						} else if rs, n = act.slow(acc, n); rs < 0 {
							return bad("invalid AC Huffman code")
						}
						r, sz := rs>>4, uint(rs&15)
						if sz == 0 {
							if r != 15 {
								break // EOB
							}
							k += 16 // ZRL
							continue
						}
						k += r
						if k > 63 {
							return bad("AC coefficient index out of range")
						}
						if n < sz {
							acc, n = d.fill(acc, n)
						}
						n -= sz
						k++
					}
					if d.pad > n {
						return bad("truncated or corrupt scan data")
					}
					// DC/8 + 128, rounded: (pred·q0 + 1028) >> 3, all in integers.
					c.plane[by*c.stride+bx] = byte(min(max((pred*d.qdc[c.tq&3]+1028)>>3, 0), 255))
				} else {
					switch N { // clear the N×N window (stores, not a memclr call per row)
					case 2:
						coef[0], coef[1], coef[8], coef[9] = 0, 0, 0, 0
					case 4:
						for v := 0; v < 32; v += 8 {
							cr := coef[v : v+4 : v+4]
							cr[0], cr[1], cr[2], cr[3] = 0, 0, 0, 0
						}
					default:
						coef = [64]float32{}
					}
					coef[0] = float32(pred) * q[0]
					rows := uint(1) // bit v: row v of coef has a non-zero coefficient
					ac := false
					last := d.last
					for k := 1; k < 64; {
						if n < 16 { // fill's common case inline (a call costs more than the work here)
							if p := d.pos; p+8 <= len(d.data) && !d.mark {
								x := binary.BigEndian.Uint64(d.data[p:])
								k := (63 - n) >> 3
								if y := ^x; ((y-0x0101010101010101)&^y&0x8080808080808080)>>((64-8*k)&63) == 0 {
									d.pos = p + int(k)
									acc, n = acc<<((8*k)&63)|x>>((64-8*k)&63), n+8*k
								} else {
									acc, n = d.fill(acc, n)
								}
							} else {
								acc, n = d.fill(acc, n)
							}
						}
						if k > last {
							// Past the coefficients that reach the output: skip whole symbols.
							if sk := act.skip[(acc>>((n-skipBits)&63))&(1<<skipBits-1)]; sk != 0 && k+int(sk>>8&255) < 64 {
								n -= uint(sk & 255)
								k += int(sk >> 8 & 255)
								if sk&skipEOB != 0 {
									break
								}
								continue
							}
						}
						p := (acc >> ((n - fastBits) & 63)) & fastMask
						if fa := act.fastAC[p]; fa != 0 {
							n -= uint(fa & 31)
							if fa&fastEOB != 0 {
								break
							}
							k += int(fa >> 8 & 15)
							if k > 63 {
								return bad("AC coefficient index out of range")
							}
							if z := keep[k]; z >= 0 {
								coef[z] = float32(fa>>16) * q[k]
								rows |= 1 << (uint(z) >> 3)
								ac = true
							}
							k++
							continue
						}
						var rs int
						if e := act.fast[p]; e != 0 {
							n -= uint(e >> 8)
							rs = int(e & 255)
						} else if rs, n = act.slow(acc, n); rs < 0 {
							return bad("invalid AC Huffman code")
						}
						r, sz := rs>>4, uint(rs&15)
						if sz == 0 {
							if r != 15 {
								break // EOB
							}
							k += 16 // ZRL
							continue
						}
						k += r
						if k > 63 {
							return bad("AC coefficient index out of range")
						}
						if n < sz {
							acc, n = d.fill(acc, n)
						}
						n -= sz
						if z := keep[k]; z >= 0 {
							v := extend(int32(acc>>(n&63))&(1<<sz-1), sz)
							coef[z] = float32(v) * q[k]
							rows |= 1 << (uint(z) >> 3)
							ac = true
						}
						k++
					}
					if d.pad > n {
						return bad("truncated or corrupt scan data")
					}
					stride := c.stride
					o := by*N*stride + bx*N
					out := c.plane[o : o+(N-1)*stride+N]
					switch {
					case N == 2:
						// 2-point IDCT: every table entry is ±1/(2√2), so each sample is
						// 128 + (c00 ± c01 ± c10 ± c11)/8.
						a, e := coef[0]+coef[1], coef[0]-coef[1]
						f, g := coef[8]+coef[9], coef[8]-coef[9]
						r0, r1 := out[:2], out[stride:stride+2]
						r0[0] = clamp8((a+f)*0.125 + 128.5)
						r0[1] = clamp8((e+g)*0.125 + 128.5)
						r1[0] = clamp8((a-f)*0.125 + 128.5)
						r1[1] = clamp8((e-g)*0.125 + 128.5)
					case !ac:
						// Flat block: DC/8 + 128 everywhere.
						px := clamp8(coef[0]*0.125 + 128.5)
						for y := 0; y < N; y++ {
							row := out[y*stride : y*stride+N]
							for x := range row {
								row[x] = px
							}
						}
					default:
						d.idctN(&coef, rows, out, stride)
					}
				}
			}
			if d.restart > 0 {
				if mcu++; mcu%d.restart == 0 && mcu < total {
					if err := d.doRestart(rst); err != nil {
						return err
					}
					rst++
					acc, n = 0, 0
				}
			}
		}
	}
	return nil
}

// idctN is the separable N-point IDCT (T.81 A.3.3) of the N×N coefficients in coef (stride
// 8), skipping zero rows, into out (stride stride).
func (d *jpegDecoder) idctN(coef *[64]float32, rows uint, out []byte, stride int) {
	N := d.n8
	var tmp [64]float32
	t := &d.idct
	for v := 0; v < N; v++ {
		if rows>>v&1 == 0 {
			continue
		}
		cr := coef[v*8 : v*8+8]
		tr := tmp[v*8 : v*8+8]
		for x := 0; x < N; x++ {
			tx := &t[x]
			var sum float32
			for u := 0; u < N; u++ {
				sum += tx[u] * cr[u]
			}
			tr[x] = sum
		}
	}
	for y := 0; y < N; y++ {
		ty := &t[y]
		row := out[y*stride : y*stride+N]
		for x := range row {
			sum := float32(128.5)
			for v := 0; v < N; v++ {
				if rows>>v&1 != 0 {
					sum += ty[v] * tmp[v*8+x]
				}
			}
			row[x] = clamp8(sum)
		}
	}
}

// clamp8 converts v (already offset by +0.5) to a byte, rounding and saturating. The
// conversion to int32 and integer min/max keep it free of branches; a v beyond the int32
// range (only from corrupt data) gives 0 or 255.
func clamp8(v float32) byte {
	return byte(min(max(int32(v), 0), 255))
}

// doRestart expects RSTn at a restart boundary and resets the decoder state (T.81 F.2.1.3).
func (d *jpegDecoder) doRestart(m int) error {
	d.acc, d.n, d.pad, d.mark = 0, 0, 0, false
	data, p := d.data, d.pos
	for p+1 < len(data) && data[p] == 0xff && data[p+1] == 0xff {
		p++
	}
	if len(data)-p < 2 || data[p] != 0xff || data[p+1] != 0xd0+byte(m&7) {
		return bad("missing or wrong restart marker")
	}
	d.pos = p + 2
	for i := range d.comp {
		d.comp[i].dcpred = 0
	}
	return nil
}

func (d *jpegDecoder) parseDQT(b []byte) error {
	for len(b) > 0 {
		pq, tq := b[0]>>4, b[0]&15
		n := 65
		if pq != 0 {
			n = 129
		}
		if pq > 1 || tq > 3 || len(b) < n {
			return bad("invalid DQT segment")
		}
		for k := 0; k < 64; k++ {
			if pq != 0 {
				d.q[tq][k] = float32(be16(b[1+2*k:]))
			} else {
				d.q[tq][k] = float32(b[1+k])
			}
		}
		d.qdc[tq] = int32(d.q[tq][0])
		d.qset[tq] = true
		b = b[n:]
	}
	return nil
}

func (d *jpegDecoder) parseDHT(b []byte) error {
	for len(b) > 0 {
		if len(b) < 17 {
			return bad("invalid DHT segment")
		}
		tc, th := b[0]>>4, b[0]&15
		if tc > 1 || th > 3 {
			return bad("invalid DHT table class or id")
		}
		total := 0
		for _, c := range b[1:17] {
			total += int(c)
		}
		if total > 256 || len(b) < 17+total {
			return bad("invalid DHT segment length")
		}
		t := &d.dc[th]
		if tc == 1 {
			t = &d.ac[th]
		}
		if !t.build(b[1:17], b[17:17+total], tc == 0) {
			return bad("invalid Huffman table")
		}
		b = b[17+total:]
	}
	return nil
}

// parseSOF reads a frame header and allocates the component planes at the chosen scale.
func (d *jpegDecoder) parseSOF(b []byte, maxPixels, minW, minH int) error {
	if d.frame {
		return bad("more than one frame header")
	}
	if len(b) < 6 {
		return bad("invalid SOF segment")
	}
	if b[0] != 8 {
		return UnsupportedError(fmt.Sprintf("jpeg: unsupported: %d-bit samples", b[0]))
	}
	d.h, d.w, d.ncomp = be16(b[1:]), be16(b[3:]), int(b[5])
	if d.h == 0 {
		return UnsupportedError("jpeg: unsupported: height defined by a DNL marker")
	}
	if d.w == 0 {
		return bad("image width is 0")
	}
	if d.w*d.h > maxPixels {
		return FormatError(fmt.Sprintf("jpeg: image of %dx%d pixels is larger than the limit of %d pixels", d.w, d.h, maxPixels))
	}
	if d.ncomp == 4 {
		return ErrCMYK
	}
	if d.ncomp != 1 && d.ncomp != 3 {
		return bad("invalid number of components")
	}
	if len(b) < 6+3*d.ncomp {
		return bad("invalid SOF segment")
	}
	d.chooseScale(minW, minH)
	d.hmax, d.vmax = 1, 1
	for i := 0; i < d.ncomp; i++ {
		c := &d.comp[i]
		c.index = i
		p := b[6+3*i:]
		c.id, c.h, c.v, c.tq = int(p[0]), int(p[1]>>4), int(p[1]&15), int(p[2])
		if c.h < 1 || c.h > 4 || c.v < 1 || c.v > 4 || c.tq > 3 {
			return bad("invalid component sampling factors or table")
		}
		for k := 0; k < i; k++ {
			if d.comp[k].id == c.id {
				return bad("duplicate component id")
			}
		}
		if d.ncomp == 1 {
			c.h, c.v = 1, 1 // a single component is never interleaved
		}
		d.hmax, d.vmax = max(d.hmax, c.h), max(d.vmax, c.v)
	}
	d.mcux = (d.w + 8*d.hmax - 1) / (8 * d.hmax)
	d.mcuy = (d.h + 8*d.vmax - 1) / (8 * d.vmax)
	N := d.n8
	for i := 0; i < d.ncomp; i++ {
		c := &d.comp[i]
		c.bw, c.bh = d.mcux*c.h, d.mcuy*c.v
		c.stride = c.bw * N
		size := c.stride * c.bh * N
		d.planes[i] = grow(d.planes[i], size)
		c.plane = d.planes[i]
		clear(c.plane) // a non-interleaved scan need not cover the padding blocks
	}
	d.frame = true
	return nil
}

// chooseScale picks the smallest N/8 (N = 8, 4, 2, 1) whose output is still at least
// minW×minH, and the N-point IDCT table.
func (d *jpegDecoder) chooseScale(minW, minH int) {
	N := 8
	for N > 1 && minW > 0 && minH > 0 && (d.w*(N/2)+7)/8 >= minW && (d.h*(N/2)+7)/8 >= minH {
		N /= 2
	}
	d.n8 = N
	for x := 0; x < N; x++ {
		for u := 0; u < N; u++ {
			cu := 0.5
			if u == 0 {
				cu = 0.5 / math.Sqrt2
			}
			d.idct[x][u] = float32(cu * math.Cos(float64((2*x+1)*u)*math.Pi/float64(2*N)))
		}
	}
	for k := range d.keep {
		z := zigzag[k]
		d.keep[k] = -1
		if int(z&7) < N && int(z>>3) < N {
			d.keep[k] = int8(z)
			d.last = k
		}
	}
}

func (d *jpegDecoder) parseSOS(b []byte, sc *[3]*component) (ns int, band [4]int, err error) {
	if !d.frame {
		return 0, band, bad("scan before frame header")
	}
	if len(b) < 1 {
		return 0, band, bad("invalid SOS segment")
	}
	ns = int(b[0])
	if ns < 1 || ns > d.ncomp || len(b) != 4+2*ns {
		return 0, band, bad("invalid SOS segment")
	}
	blocks := 0
	for i := 0; i < ns; i++ {
		id, t := int(b[1+2*i]), b[2+2*i]
		var c *component
		for k := 0; k < d.ncomp; k++ {
			if d.comp[k].id == id {
				c = &d.comp[k]
			}
		}
		if c == nil {
			return 0, band, bad("scan names an unknown component")
		}
		for k := 0; k < i; k++ {
			if sc[k] == c {
				return 0, band, bad("scan names a component twice")
			}
		}
		c.td, c.ta = int(t>>4), int(t&15)
		// A progressive scan uses a DC table (a first DC scan) or an AC table (an AC scan).
		p := b[1+2*ns:]
		needDC, needAC := !d.progressive || p[0] == 0 && p[2]>>4 == 0, !d.progressive || p[0] > 0
		if c.td > 3 || c.ta > 3 || needDC && !d.dc[c.td].present || needAC && !d.ac[c.ta].present {
			return 0, band, bad("scan uses an undefined Huffman table")
		}
		if !d.qset[c.tq] {
			return 0, band, bad("component uses an undefined quantisation table")
		}
		if d.n8 < 8 && !d.progressive && !d.ac[c.ta].skipBuilt {
			d.ac[c.ta].buildSkip()
		}
		c.scanned = true
		sc[i] = c
		blocks += c.h * c.v
	}
	if ns > 1 && blocks > 10 {
		return 0, band, bad("too many blocks per MCU")
	}
	p := b[1+2*ns:]
	if d.progressive {
		ss, se, ah, al, err := progBand(ns, p)
		return ns, [4]int{ss, se, ah, al}, err
	}
	if p[0] != 0 || p[1] != 63 || p[2] != 0 {
		return 0, band, bad("invalid spectral selection for a sequential scan")
	}
	return ns, band, nil
}

func sofName(m byte) string {
	switch m {
	case 0xc2:
		return "progressive JPEG"
	case 0xc3:
		return "lossless JPEG"
	case 0xc5, 0xc6, 0xc7:
		return "hierarchical JPEG"
	}
	return "arithmetic-coded JPEG"
}

// DecodeJPEG decodes a baseline JPEG at the smallest of 1/1, 1/2, 1/4 and 1/8 of its size
// whose width and height are still at least minW and minH (0, 0: full size). The result is
// ceil(w·N/8) × ceil(h·N/8) for the chosen N.
func (d *Decoder) DecodeJPEG(data []byte, minW, minH int) (*RGB, error) {
	j := &d.jpeg
	j.jpegState = jpegState{data: data}
	for i := range j.dc {
		j.dc[i].present, j.ac[i].present = false, false
	}
	err := j.decode(d.maxPixels(), minW, minH)
	if err == nil {
		if j.progressive {
			j.progFinish()
		}
		d.jpegRGB()
	}
	j.data = nil
	for i := range j.comp {
		j.comp[i].plane = nil
	}
	if err != nil {
		return nil, err
	}
	return &d.out, nil
}

func (j *jpegDecoder) decode(maxPixels, minW, minH int) error {
	d := j
	data := d.data
	if len(data) < 3 || data[0] != 0xff || data[1] != 0xd8 || data[2] != 0xff {
		return bad("missing SOI marker")
	}
	p := 2
	for {
		// The next marker: FF, optional FF fill bytes, then the code.
		if len(data)-p < 2 {
			// Tolerate a missing EOI once every component has been decoded.
			if d.complete() {
				return nil
			}
			return bad("truncated file")
		}
		if data[p] != 0xff {
			return bad("expected a marker")
		}
		m := data[p+1]
		p += 2
		switch {
		case m == 0xff: // fill byte
			p--
			continue
		case m == 0xd9: // EOI
			if !d.frame {
				return bad("no frame header before EOI")
			}
			if !d.complete() {
				return bad("a component has no scan")
			}
			return nil
		case m == 0xd8:
			return bad("unexpected SOI marker")
		case m >= 0xd0 && m <= 0xd7 || m == 0x01: // no payload
			continue
		}
		if len(data)-p < 2 {
			return bad("truncated marker segment")
		}
		n := be16(data[p:])
		if n < 2 || n > len(data)-p {
			return bad("truncated marker segment")
		}
		seg := data[p+2 : p+n]
		p += n
		var err error
		switch m {
		case 0xc0, 0xc1:
			err = d.parseSOF(seg, maxPixels, minW, minH)
		case 0xc2:
			d.progressive = true
			if err = d.parseSOF(seg, maxPixels, minW, minH); err == nil {
				d.progStart()
			}
		case 0xc3, 0xc5, 0xc6, 0xc7, 0xc9, 0xca, 0xcb, 0xcd, 0xce, 0xcf:
			return UnsupportedError("jpeg: unsupported: " + sofName(m) + " (only baseline and progressive Huffman-coded JPEG are decoded)")
		case 0xc4:
			err = d.parseDHT(seg)
		case 0xcc:
			return UnsupportedError("jpeg: unsupported: arithmetic-coded JPEG")
		case 0xdb:
			err = d.parseDQT(seg)
		case 0xdd:
			if len(seg) != 2 {
				return bad("invalid DRI segment")
			}
			d.restart = be16(seg)
		case 0xee: // APP14 "Adobe": colour transform flag
			if len(seg) >= 12 && string(seg[:5]) == "Adobe" {
				d.adobe, d.adobeTransform = true, seg[11]
			}
		case 0xda:
			var sc [3]*component
			ns, band, err := d.parseSOS(seg, &sc)
			if err != nil {
				return err
			}
			d.pos = p
			if d.progressive {
				err = d.decodeProgScan(sc[:ns], band[0], band[1], band[2], band[3])
			} else {
				err = d.decodeScan(sc[:ns])
			}
			if err != nil {
				return err
			}
			// Skip to the marker after the scan data: past stuffed FF00s and RSTn.
			p = d.pos
			for p < len(data) && !(data[p] == 0xff && p+1 < len(data) && data[p+1] != 0 && !(data[p+1] >= 0xd0 && data[p+1] <= 0xd7)) {
				p++
			}
		}
		if err != nil {
			return err
		}
	}
}

func (j *jpegDecoder) complete() bool {
	if !j.frame {
		return false
	}
	for i := 0; i < j.ncomp; i++ {
		if !j.comp[i].scanned {
			return false
		}
	}
	return true
}
