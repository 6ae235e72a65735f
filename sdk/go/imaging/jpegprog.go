package imaging

// Progressive JPEG (T.81 annex G: spectral selection and successive approximation, Huffman
// coded) at DCT scale N/8, as the baseline decoder does: only the N×N lowest-frequency
// coefficients of each block reach the output, so only those are kept between scans (as
// int16), with a 64-bit mask per block of which coefficients are non-zero so far, which is
// all a refinement scan needs to know of the others. A 12-megapixel 4:2:0 frame decoded at
// 1/8 keeps 10 bytes a block, 2.9 MB in all, where a full decode keeps 128 (or image/jpeg's
// 256) bytes a block and the image. Every coefficient of every scan is still entropy-decoded.

import (
	"fmt"
	"math/bits"
)

// coefStore is one component's coefficients: n×n per block, natural order, and the masks.
type coefStore struct {
	coef []int16
	mask []uint64 // bit k: zig-zag coefficient k is non-zero
}

// progStart allocates the coefficient stores once the frame header is read.
func (d *jpegDecoder) progStart() {
	N := d.n8
	for i := 0; i < d.ncomp; i++ {
		c := &d.comp[i]
		s := &d.prog[i]
		nb := c.bw * c.bh
		s.coef = grow16(s.coef, nb*N*N)
		s.mask = grow64(s.mask, nb)
		clear(s.coef)
		clear(s.mask)
	}
	d.kept = 0
	for k := range d.kidx {
		d.kidx[k] = -1
		if z := d.keep[k]; z >= 0 {
			d.kidx[k] = int8(int(z>>3)*N + int(z&7))
			d.kept |= 1 << k
		}
	}
}

func grow16(b []int16, n int) []int16 {
	if cap(b) >= n {
		return b[:n]
	}
	return make([]int16, n)
}

func grow64(b []uint64, n int) []uint64 {
	if cap(b) >= n {
		return b[:n]
	}
	return make([]uint64, n)
}

// getBits reads s ≤ 16 bits.
func (d *jpegDecoder) getBits(s uint) int32 {
	if d.n < s {
		d.acc, d.n = d.fill(d.acc, d.n)
	}
	d.n -= s
	return int32(d.acc>>(d.n&63)) & (1<<s - 1)
}

// huff decodes one Huffman symbol, -1 for an invalid code.
func (d *jpegDecoder) huff(t *huffTable) int {
	if d.n < 16 {
		d.acc, d.n = d.fill(d.acc, d.n)
	}
	p := (d.acc >> ((d.n - fastBits) & 63)) & fastMask
	if e := t.fast[p]; e != 0 {
		d.n -= uint(e >> 8)
		return int(e & 255)
	}
	v, n := t.slow(d.acc, d.n)
	d.n = n
	return v
}

func sat16(v int32) int16 { return int16(max(-32768, min(32767, v))) }

// decodeProgScan decodes one scan of a progressive JPEG: spectral band ss..se, successive
// approximation bit positions ah (0: first scan of the band) and al.
func (d *jpegDecoder) decodeProgScan(sc []*component, ss, se, ah, al int) error {
	d.pad, d.mark, d.acc, d.n, d.eobrun = 0, false, 0, 0, 0
	var blocks [10]scanBlock
	nb, mcuw, mcuh := 0, d.mcux, d.mcuy
	if len(sc) == 1 {
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
	NN := d.n8 * d.n8
	total := mcuw * mcuh
	mcu, rst := 0, 0
	for my := 0; my < mcuh; my++ {
		for mx := 0; mx < mcuw; mx++ {
			for bi := range blocks[:nb] {
				b := &blocks[bi]
				c := b.c
				st := &d.prog[c.index]
				blk := (my*b.mv+b.dy)*c.bw + mx*b.mh + b.dx
				coef := st.coef[blk*NN : blk*NN+NN]
				var err error
				switch {
				case ss == 0 && ah == 0: // DC, first
					s := d.huff(&d.dc[c.td&3])
					if s < 0 || s > 11 {
						return bad("invalid DC Huffman code")
					}
					pred := c.dcpred + extend(d.getBits(uint(s)), uint(s))
					pred = max(-32768, min(32767, pred))
					c.dcpred = pred
					coef[0] = sat16(pred << al)
				case ss == 0: // DC, refinement: one bit
					if d.getBits(1) != 0 {
						coef[0] |= int16(1 << al)
					}
				case ah == 0:
					err = d.acFirst(coef, &st.mask[blk], &d.ac[c.ta&3], ss, se, al)
				default:
					err = d.acRefine(coef, &st.mask[blk], &d.ac[c.ta&3], ss, se, al)
				}
				if err != nil {
					return err
				}
				if d.pad > d.n {
					return bad("truncated or corrupt scan data")
				}
			}
			if d.restart > 0 {
				if mcu++; mcu%d.restart == 0 && mcu < total {
					if err := d.doRestart(rst); err != nil {
						return err
					}
					rst++
					d.eobrun = 0
				}
			}
		}
	}
	return nil
}

// The AC scans' loops keep the bit buffer in locals and decode the common symbols with one
// table look-up (a call or a field access per symbol costs more than the work here, in
// WebAssembly above all).

// acFirst decodes a block's first scan of the band ss..se (T.81 G.1.2.2).
func (d *jpegDecoder) acFirst(coef []int16, mask *uint64, t *huffTable, ss, se, al int) error {
	if d.eobrun > 0 {
		d.eobrun--
		return nil
	}
	acc, n := d.acc, d.n
	m := *mask
	kidx := &d.kidx
	var err error
	for k := ss; k <= se; k++ {
		if n < 32 {
			acc, n = d.fill(acc, n)
		}
		p := (acc >> ((n - fastBits) & 63)) & fastMask
		if fa := t.fastAC[p]; fa != 0 && fa&fastEOB == 0 {
			// A run, a size and its magnitude bits in one entry.
			n -= uint(fa & 31)
			k += int(fa >> 8 & 15)
			if k > se {
				err = bad("AC coefficient index out of range")
				break
			}
			m |= 1 << k
			if i := kidx[k&63]; i >= 0 {
				coef[i] = sat16((fa >> 16) << al)
			}
			continue
		}
		var rs int
		if e := t.fast[p]; e != 0 {
			n -= uint(e >> 8)
			rs = int(e & 255)
		} else if rs, n = t.slow(acc, n); rs < 0 {
			err = bad("invalid AC Huffman code")
			break
		}
		r, s := rs>>4, uint(rs&15)
		if s == 0 {
			if r != 15 {
				d.eobrun = 1<<r - 1
				if r > 0 {
					n -= uint(r)
					d.eobrun += int(acc>>(n&63)) & (1<<r - 1)
				}
				break
			}
			k += 15 // ZRL
			continue
		}
		k += r
		if k > se {
			err = bad("AC coefficient index out of range")
			break
		}
		n -= s
		v := extend(int32(acc>>(n&63))&(1<<s-1), s) << al
		m |= 1 << k
		if i := kidx[k&63]; i >= 0 {
			coef[i] = sat16(v)
		}
	}
	d.acc, d.n, *mask = acc, n, m
	return err
}

// acRefine decodes a block's refinement scan of the band ss..se (T.81 G.1.2.3): a
// correction bit for each coefficient already non-zero, and new coefficients of ±1<<al.
func (d *jpegDecoder) acRefine(coef []int16, mask *uint64, t *huffTable, ss, se, al int) error {
	acc, n := d.acc, d.n
	m := *mask
	kidx := &d.kidx
	delta := int32(1) << al
	k := ss
	var err error
	if d.eobrun == 0 {
		for ; k <= se; k++ {
			if n < 32 {
				acc, n = d.fill(acc, n)
			}
			p := (acc >> ((n - fastBits) & 63)) & fastMask
			var rs int
			if e := t.fast[p]; e != 0 {
				n -= uint(e >> 8)
				rs = int(e & 255)
			} else if rs, n = t.slow(acc, n); rs < 0 {
				err = bad("invalid AC Huffman code")
				break
			}
			r, s := rs>>4, rs&15
			var z int32
			switch s {
			case 0:
				if r != 15 {
					d.eobrun = 1 << r
					if r > 0 {
						n -= uint(r)
						d.eobrun += int(acc>>(n&63)) & (1<<r - 1)
					}
					goto rest
				}
			case 1:
				n--
				z = delta
				if acc>>(n&63)&1 == 0 {
					z = -z
				}
			default:
				err = bad("invalid AC refinement code")
				goto done
			}
			k, acc, n = d.refine(coef, m, k, se, r, delta, acc, n)
			if k > se {
				err = bad("AC coefficient index out of range")
				goto done
			}
			if z != 0 {
				m |= 1 << k
				if i := kidx[k&63]; i >= 0 {
					coef[i] = int16(z)
				}
			}
		}
	}
rest:
	if d.eobrun > 0 {
		d.eobrun--
		_, acc, n = d.refine(coef, m, k, se, -1, delta, acc, n)
	}
done:
	d.acc, d.n, *mask = acc, n, m
	return err
}

// refine reads the correction bits of the non-zero coefficients (mask) from k on and stops
// at the (nz+1)-th zero one (nz < 0: past se), returning its index (se+1 when there is none)
// and the bit buffer. It goes by the mask's bits: only the non-zero coefficients are visited.
func (d *jpegDecoder) refine(coef []int16, mask uint64, k, se, nz int, delta int32, acc uint64, n uint) (int, uint64, uint) {
	if k > se {
		return k, acc, n
	}
	band := ^uint64(0) << uint(k) & (^uint64(0) >> uint(63-se))
	end := se + 1
	if nz >= 0 {
		z := ^mask & band
		for ; nz > 0 && z != 0; nz-- {
			z &= z - 1
		}
		if z != 0 {
			end = bits.TrailingZeros64(z)
		}
	}
	nzs := mask & band
	if end < 64 {
		nzs &= 1<<uint(end) - 1
	}
	kidx := &d.kidx
	if c := bits.OnesCount64(nzs); c <= 48 {
		// The c correction bits at once; only those of kept coefficients are looked at
		// (at 1/8 scale none: a refinement scan's AC bits are only skipped).
		if n < uint(c) {
			acc, n = d.fill(acc, n)
		}
		n -= uint(c)
		w := acc >> (n & 63) & (1<<uint(c) - 1)
		for kept := nzs & d.kept; kept != 0 && w != 0; kept &= kept - 1 {
			j := bits.TrailingZeros64(kept)
			r := bits.OnesCount64(nzs & (1<<uint(j) - 1)) // the bit's place among the c
			if w>>uint(c-1-r)&1 != 0 {
				i := kidx[j&63]
				if coef[i] >= 0 {
					coef[i] = sat16(int32(coef[i]) + delta)
				} else {
					coef[i] = sat16(int32(coef[i]) - delta)
				}
			}
		}
		return end, acc, n
	}
	for nzs != 0 {
		j := bits.TrailingZeros64(nzs)
		nzs &= nzs - 1
		if n < 1 {
			acc, n = d.fill(acc, n)
		}
		n--
		if acc>>(n&63)&1 == 0 {
			continue
		}
		if i := kidx[j&63]; i >= 0 {
			if coef[i] >= 0 {
				coef[i] = sat16(int32(coef[i]) + delta)
			} else {
				coef[i] = sat16(int32(coef[i]) - delta)
			}
		}
	}
	return end, acc, n
}

// progFinish dequantises and transforms every block's kept coefficients into the planes, as
// the baseline decoder does in its scan.
func (d *jpegDecoder) progFinish() {
	N := d.n8
	NN := N * N
	var coef [64]float32
	for i := 0; i < d.ncomp; i++ {
		c := &d.comp[i]
		st := &d.prog[i]
		q := &d.q[c.tq&3]
		for by := 0; by < c.bh; by++ {
			for bx := 0; bx < c.bw; bx++ {
				bi := by*c.bw + bx
				cs := st.coef[bi*NN : bi*NN+NN]
				if N == 1 {
					c.plane[by*c.stride+bx] = byte(min(max((int32(cs[0])*d.qdc[c.tq&3]+1028)>>3, 0), 255))
					continue
				}
				rows, ac := uint(0), false
				for k := 0; k <= d.last; k++ {
					z := d.keep[k]
					if z < 0 {
						continue
					}
					v := cs[d.kidx[k]]
					coef[z] = float32(v) * q[k]
					if v != 0 || k == 0 {
						rows |= 1 << (uint(z) >> 3)
						if k > 0 {
							ac = true
						}
					}
				}
				stride := c.stride
				o := by*N*stride + bx*N
				out := c.plane[o : o+(N-1)*stride+N]
				switch {
				case N == 2:
					a, e := coef[0]+coef[1], coef[0]-coef[1]
					f, g := coef[8]+coef[9], coef[8]-coef[9]
					r0, r1 := out[:2], out[stride:stride+2]
					r0[0] = clamp8((a+f)*0.125 + 128.5)
					r0[1] = clamp8((e+g)*0.125 + 128.5)
					r1[0] = clamp8((a-f)*0.125 + 128.5)
					r1[1] = clamp8((e-g)*0.125 + 128.5)
				case !ac:
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
	}
}

// progBand checks a progressive scan header's band and approximation (T.81 G.1.1.1.1).
func progBand(ns int, p []byte) (ss, se, ah, al int, err error) {
	ss, se, ah, al = int(p[0]), int(p[1]), int(p[2]>>4), int(p[2]&15)
	switch {
	case ss == 0 && se != 0, ss > se, se > 63, al > 13, ah != 0 && ah != al+1:
		return 0, 0, 0, 0, bad(fmt.Sprintf("invalid progressive scan (Ss %d, Se %d, Ah %d, Al %d)", ss, se, ah, al))
	case ss > 0 && ns != 1:
		return 0, 0, 0, 0, bad("progressive AC scan of more than one component")
	}
	return ss, se, ah, al, nil
}
