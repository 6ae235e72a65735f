package imaging

// jpegRGB converts the decoded component planes to packed RGB in d.out, at the decoded scale,
// upsampling chroma by replication.
func (d *Decoder) jpegRGB() {
	j := &d.jpeg
	N := j.n8
	W, H := (j.w*N+7)/8, (j.h*N+7)/8
	pix := d.rgbBuffer(W * H * 3)
	d.out = RGB{W: W, H: H, Pix: pix}
	c := &j.comp
	if j.ncomp == 1 {
		for y := 0; y < H; y++ {
			row := c[0].plane[y*c[0].stride:][:W]
			out := pix[y*W*3 : (y+1)*W*3]
			for x, v := range row {
				o := out[3*x : 3*x+3 : 3*x+3]
				o[0], o[1], o[2] = v, v, v
			}
		}
		return
	}
	isRGB := (j.adobe && j.adobeTransform == 0) || (c[0].id == 'R' && c[1].id == 'G' && c[2].id == 'B')
	// How chroma columns map to output columns: 0 same, 1 halved, 2 by table.
	mode := 2
	if c[0].h == j.hmax && c[1].h == c[2].h {
		switch j.hmax {
		case c[1].h:
			mode = 0
		case 2 * c[1].h:
			mode = 1
		}
	}
	if isRGB {
		mode = 2
	}
	if mode == 2 {
		for i := 0; i < 3; i++ {
			m := grow32(j.xmap[i], W)
			for x := range m {
				m[x] = int32(x * c[i].h / j.hmax)
			}
			j.xmap[i] = m
		}
	}
	var rows [3][]byte
	for y := 0; y < H; y++ {
		for i := range rows {
			ci := &c[i]
			rows[i] = ci.plane[(y*ci.v/j.vmax)*ci.stride:][:ci.stride]
		}
		out := pix[y*W*3 : (y+1)*W*3]
		switch mode {
		case 0:
			ycc(out, rows[0][:W], rows[1][:W], rows[2][:W])
		case 1:
			cw := (W + 1) / 2
			ycc420(out, rows[0][:W], rows[1][:cw], rows[2][:cw])
		default:
			m0, m1, m2 := j.xmap[0][:W], j.xmap[1][:W], j.xmap[2][:W]
			r0, r1, r2 := rows[0], rows[1], rows[2]
			for x := 0; x < W; x++ {
				a, b, cc := r0[m0[x]], r1[m1[x]], r2[m2[x]]
				o := out[3*x : 3*x+3 : 3*x+3]
				if isRGB {
					o[0], o[1], o[2] = a, b, cc
				} else {
					o[0], o[1], o[2] = yccPixel(a, b, cc)
				}
			}
		}
	}
}

// ycc converts one row of full-resolution Y, Cb, Cr to RGB.
func ycc(out, ys, cbs, crs []byte) {
	for x, y := range ys {
		o := out[3*x : 3*x+3 : 3*x+3]
		yy, cb, cr := int32(y)*0x10101, int32(cbs[x])-128, int32(crs[x])-128
		o[0], o[1], o[2] = sat(yy+91881*cr), sat(yy-22554*cb-46802*cr), sat(yy+116130*cb)
	}
}

// ycc420 converts one row of Y with horizontally halved Cb, Cr to RGB.
func ycc420(out, ys, cbs, crs []byte) {
	for x, y := range ys {
		o := out[3*x : 3*x+3 : 3*x+3]
		yy, cb, cr := int32(y)*0x10101, int32(cbs[x>>1])-128, int32(crs[x>>1])-128
		o[0], o[1], o[2] = sat(yy+91881*cr), sat(yy-22554*cb-46802*cr), sat(yy+116130*cb)
	}
}

// yccPixel is image/color.YCbCrToRGB: JFIF coefficients in 16.16 fixed point.
func yccPixel(y, cb, cr byte) (byte, byte, byte) {
	yy := int32(y) * 0x10101
	cb1 := int32(cb) - 128
	cr1 := int32(cr) - 128
	return sat(yy + 91881*cr1), sat(yy - 22554*cb1 - 46802*cr1), sat(yy + 116130*cb1)
}

// sat is the clamp of color.YCbCrToRGB, (v >> 16) saturated to 0..255, without branches.
func sat(v int32) byte {
	return byte(min(max(v, 0), 0xffffff) >> 16)
}

func grow32(b []int32, n int) []int32 {
	if cap(b) >= n {
		return b[:n]
	}
	return make([]int32, n)
}
