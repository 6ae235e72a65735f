package imaging

import "encoding/binary"

// Orientation returns the EXIF orientation (1-8, TIFF tag 0x0112) of a JPEG's APP1 segment:
// 1 when there is none or it is malformed. 2-8 mean the stored image is shown mirrored
// and/or rotated; 5-8 with its width and height swapped.
func Orientation(data []byte) int {
	if Format(data) != "jpeg" {
		return 1
	}
	for p := 2; p+4 <= len(data); {
		if data[p] != 0xff {
			return 1
		}
		m := data[p+1]
		switch {
		case m == 0xff:
			p++
			continue
		case m == 0xd8 || m >= 0xd0 && m <= 0xd7 || m == 0x01:
			p += 2
			continue
		case m == 0xda || m == 0xd9: // the scan: no EXIF before it
			return 1
		}
		n := int(binary.BigEndian.Uint16(data[p+2:]))
		if n < 2 || n > len(data)-p-2 {
			return 1
		}
		seg := data[p+4 : p+2+n]
		if m == 0xe1 && len(seg) >= 14 && string(seg[:6]) == "Exif\x00\x00" {
			return tiffOrientation(seg[6:])
		}
		p += 2 + n
	}
	return 1
}

// tiffOrientation reads the Orientation entry of IFD0 of a TIFF header.
func tiffOrientation(t []byte) int {
	var bo binary.ByteOrder
	switch string(t[:4]) {
	case "II*\x00":
		bo = binary.LittleEndian
	case "MM\x00*":
		bo = binary.BigEndian
	default:
		return 1
	}
	ifd := int(bo.Uint32(t[4:]))
	if ifd < 0 || ifd > len(t)-2 {
		return 1
	}
	count := int(bo.Uint16(t[ifd:]))
	for i := 0; i < count; i++ {
		e := ifd + 2 + 12*i
		if e+12 > len(t) {
			return 1
		}
		if bo.Uint16(t[e:]) == 0x0112 { // SHORT, count 1, the value in the entry
			if v := int(bo.Uint16(t[e+8:])); bo.Uint16(t[e+2:]) == 3 && bo.Uint32(t[e+4:]) == 1 && v >= 1 && v <= 8 {
				return v
			}
			return 1
		}
	}
	return 1
}

// Orient turns src, an image resized from the stored image (h×w elements of elem bytes, or
// w×h for orientations 5-8), into dst (h×w) as it is shown under EXIF orientation o.
func Orient(dst, src []byte, h, w, elem, o int) {
	wr, hr := w, h
	if o >= 5 {
		wr, hr = h, w
	}
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			sx, sy := x, y
			switch o {
			case 2:
				sx = wr - 1 - x
			case 3:
				sx, sy = wr-1-x, hr-1-y
			case 4:
				sy = hr - 1 - y
			case 5:
				sx, sy = y, x
			case 6:
				sx, sy = y, hr-1-x
			case 7:
				sx, sy = wr-1-y, hr-1-x
			case 8:
				sx, sy = wr-1-y, x
			}
			copy(dst[(y*w+x)*elem:][:elem], src[(sy*wr+sx)*elem:][:elem])
		}
	}
}
