package imaging

// A zlib (RFC 1950) / deflate (RFC 1951) decoder written from the RFCs, for PNG image data.
//
// The output is a window buffer the decoder hands out a row at a time: back-references are
// copies inside it, and when it fills, all but its last 32 KiB (deflate's window) and the
// bytes not yet read are dropped. No io.Reader, no per-byte interface call (what makes
// compress/flate slow in Go-compiled WebAssembly). The input is PNG's IDAT payloads as they
// lie in the file, read through a 64-bit bit buffer refilled eight bytes at a time, and
// each Huffman symbol is one table look-up that also yields its length or distance base and
// extra-bit count (a second look-up only for codes longer than the first table's bits).
// Every read and write is bounds-checked: corrupt or truncated streams return a FormatError.

import "encoding/binary"

const (
	litBits  = 11 // first-level table bits of the literal/length code
	distBits = 8  // and of the distance code
	maxCode  = 15 // longest code, RFC 1951 §3.2.7

	// A table entry: value<<16 | extra-bit count<<8 | kind | code length (bits 0-4).
	kindLit  = 0 << 5
	kindLen  = 1 << 5 // length (literal/length table) or distance (distance table)
	kindEOB  = 2 << 5
	kindSub  = 3 << 5 // value: index of a second-level table; extra: its bits
	kindMask = 3 << 5
)

// inflateTable is a two-level Huffman decoding table.
type inflateTable struct {
	e    []uint32
	bits uint
}

var (
	lenBase   = [29]uint16{3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258}
	lenExtra  = [29]uint8{0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0}
	distBase  = [30]uint16{1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577}
	distExtra = [30]uint8{0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13}
)

// entry is the table entry of symbol sym with a code of n bits.
func litEntry(sym int, n uint) uint32 {
	switch {
	case sym < 256:
		return uint32(sym)<<16 | kindLit | uint32(n)
	case sym == 256:
		return kindEOB | uint32(n)
	case sym < 286:
		return uint32(lenBase[sym-257])<<16 | uint32(lenExtra[sym-257])<<8 | kindLen | uint32(n)
	}
	return 0 // 286, 287: valid codes of the fixed table that must not occur
}

func distEntry(sym int, n uint) uint32 {
	if sym < 30 {
		return uint32(distBase[sym])<<16 | uint32(distExtra[sym])<<8 | kindLen | uint32(n)
	}
	return 0
}

// build fills t from code lengths (0: unused) with first-level bits tb. Over-subscribed
// lengths are an error; incomplete ones are allowed (RFC 1951 permits a single distance code)
// and their unused codes decode as entry 0, an error.
func (t *inflateTable) build(lens []uint8, tb uint, entry func(int, uint) uint32) bool {
	var count [maxCode + 1]int
	for _, l := range lens {
		count[l]++
	}
	count[0] = 0
	left := 1
	for l := 1; l <= maxCode; l++ {
		left = left<<1 - count[l]
		if left < 0 {
			return false
		}
	}
	var next [maxCode + 2]int // first canonical code of each length
	code := 0
	for l := 1; l <= maxCode; l++ {
		code = (code + count[l-1]) << 1
		next[l] = code
	}
	// Second-level sizes: for each first-level prefix, the longest code beyond tb bits.
	size := 1 << tb
	t.bits = tb
	var sub [1 << 12]uint8
	var codes [288 + 32]uint16 // reversed codes (the reader is LSB first)
	for s, l := range lens {
		if l == 0 {
			continue
		}
		c := next[l]
		next[l]++
		r := 0
		for i := 0; i < int(l); i++ {
			r |= (c >> i & 1) << (int(l) - 1 - i)
		}
		codes[s] = uint16(r)
		if uint(l) > tb {
			p := r & (1<<tb - 1)
			sub[p] = max(sub[p], l-uint8(tb))
		}
	}
	total := size
	for p := 0; p < 1<<tb; p++ {
		if sub[p] > 0 {
			total += 1 << sub[p]
		}
	}
	if cap(t.e) < total {
		t.e = make([]uint32, total)
	}
	t.e = t.e[:total]
	clear(t.e)
	at := size
	for p := 0; p < 1<<tb; p++ {
		if sub[p] > 0 {
			t.e[p] = uint32(at)<<16 | uint32(sub[p])<<8 | kindSub | uint32(tb)
			at += 1 << sub[p]
		}
	}
	for s, l := range lens {
		if l == 0 {
			continue
		}
		r, n := int(codes[s]), uint(l)
		if n <= tb {
			e := entry(s, n)
			for f := r; f < size; f += 1 << n {
				t.e[f] = e
			}
			continue
		}
		head := t.e[r&(1<<tb-1)]
		base, sb := int(head>>16), uint(head>>8&15)
		e := entry(s, n-tb) // the second level consumes the remaining bits
		for f := r >> tb; f < 1<<sb; f += 1 << (n - tb) {
			t.e[base+f] = e
		}
	}
	return true
}

// inflater holds the tables between calls so that a PNG decoder reuses their memory.
type inflater struct {
	lit, dist, clen inflateTable
	lens            [286 + 30]uint8
}

// bitReader is the input and its bit buffer; the hot loop copies the fields to locals.
type bitReader struct {
	in   []byte   // the current input slice
	rest [][]byte // the slices after it
	p    int
	bits uint64
	nb   uint
	pad  uint // zero bits added past the end of the input
}

// refill makes nb ≥ 56, appending zero bytes once the input is exhausted. The fast path ORs in
// eight bytes but counts only the whole ones that fit: the bits above nb are then the next
// byte's, read ahead, and ORing that byte in again later leaves them as they are.
func (b *bitReader) refill() {
	if b.p+8 <= len(b.in) {
		b.bits |= binary.LittleEndian.Uint64(b.in[b.p:]) << b.nb
		b.p += int(63-b.nb) >> 3
		b.nb |= 56
		return
	}
	for b.nb <= 56 {
		for b.p >= len(b.in) && len(b.rest) > 0 {
			b.in, b.rest, b.p = b.rest[0], b.rest[1:], 0
		}
		if b.p < len(b.in) {
			b.bits |= uint64(b.in[b.p]) << b.nb
			b.p++
		} else {
			b.pad += 8
		}
		b.nb += 8
	}
}

func (b *bitReader) get(n uint) uint32 {
	if b.nb < n {
		b.refill()
	}
	v := uint32(b.bits & (1<<n - 1))
	b.bits >>= n
	b.nb -= n
	return v
}

// overrun reports whether a bit past the end of the input was consumed.
func (b *bitReader) overrun() bool { return b.pad > b.nb }

var errTruncated = FormatError("png: zlib: truncated data")

// zstream inflates a zlib stream (RFC 1950) a piece at a time into its window buffer, from
// which read takes the bytes in order.
type zstream struct {
	z          *inflater
	b          bitReader
	buf        []byte
	pos        int // the end of the output in buf
	start      int // the first byte in buf not yet read
	summed     int // buf[:summed] is in adler
	adler      uint32
	state      int
	final      bool // the block being decoded is the last
	stored     int  // bytes left of a stored block
	total, max int  // bytes inflated so far, and how many the image needs
}

const (
	zsHeader = iota // next: a block header
	zsCodes         // inside a Huffman-coded block
	zsStored        // inside a stored block
	zsDone          // the last block and the checksum are read
)

// start begins inflating the zlib stream that is the concatenation of in, whose image data
// is want bytes, read in pieces of at most maxRead bytes.
func (s *zstream) begin(z *inflater, in [][]byte, buf []byte, want, maxRead int) ([]byte, error) {
	// After a compaction at most max(32 KiB, a read's unread part) is kept: room for a whole
	// read and 512 KiB more, so that compactions are rare.
	size := 32<<10 + maxRead + 512<<10
	if cap(buf) < size {
		buf = make([]byte, size)
	}
	*s = zstream{z: z, buf: buf[:size], adler: 1, max: want}
	if len(in) > 0 {
		s.b = bitReader{in: in[0], rest: in[1:]}
	}
	cmf, flg := int(s.b.get(8)), int(s.b.get(8))
	switch {
	case s.b.overrun():
		return buf, FormatError("png: zlib: truncated header")
	case cmf&15 != 8 || cmf>>4 > 7:
		return buf, FormatError("png: zlib: not a deflate stream")
	case (cmf<<8|flg)%31 != 0:
		return buf, FormatError("png: zlib: header check failed")
	case flg&0x20 != 0:
		return buf, FormatError("png: zlib: preset dictionary not allowed")
	}
	return buf, nil
}

// read fills dst with the next len(dst) inflated bytes.
func (s *zstream) read(dst []byte) error {
	for s.pos-s.start < len(dst) {
		if s.state == zsDone {
			return FormatError("png: zlib: not enough image data")
		}
		if len(s.buf)-s.pos < 2*maxMatch {
			s.compact()
		}
		if err := s.more(); err != nil {
			return err
		}
	}
	copy(dst, s.buf[s.start:])
	s.start += len(dst)
	return nil
}

const maxMatch = 258

// compact drops the output that is read and more than 32 KiB back.
func (s *zstream) compact() {
	k := min(s.start, s.pos-32<<10)
	if k <= 0 {
		return
	}
	s.adler = adler32Update(s.adler, s.buf[s.summed:s.pos])
	n := copy(s.buf, s.buf[k:s.pos])
	s.pos, s.start, s.summed = n, s.start-k, n
}

// more inflates what fits in the window's free space, or reads a block header.
func (s *zstream) more() error {
	b := &s.b
	switch s.state {
	case zsHeader:
		if s.final {
			return s.finish()
		}
		s.final = b.get(1) == 1
		typ := b.get(2)
		if b.overrun() {
			return errTruncated
		}
		switch typ {
		case 0:
			b.get(b.nb & 7)
			n, nn := b.get(16), b.get(16)
			if b.overrun() {
				return errTruncated
			}
			if n^0xffff != nn {
				return FormatError("png: zlib: stored block length mismatch")
			}
			s.stored, s.state = int(n), zsStored
		case 1:
			s.z.fixed()
			s.state = zsCodes
		case 2:
			if err := s.z.dynamic(b); err != nil {
				return err
			}
			s.state = zsCodes
		default:
			return FormatError("png: zlib: invalid block type 3")
		}
		return nil
	case zsCodes:
		pos, eob, err := s.z.codes(b, s.buf, s.pos, len(s.buf)-maxMatch)
		s.total += pos - s.pos
		s.pos = pos
		if err != nil {
			return err
		}
		if eob {
			s.state = zsHeader
		}
	case zsStored:
		n := min(s.stored, len(s.buf)-s.pos)
		s.stored -= n
		for ; n > 0 && b.nb >= 8; n-- { // whole bytes still in the bit buffer
			s.buf[s.pos] = byte(b.get(8))
			s.pos++
			s.total++
		}
		// The bits above nb were read ahead from the bytes copied next: drop them.
		b.bits &= 1<<b.nb - 1
		for n > 0 {
			for b.p >= len(b.in) && len(b.rest) > 0 {
				b.in, b.rest, b.p = b.rest[0], b.rest[1:], 0
			}
			if b.p >= len(b.in) {
				return errTruncated
			}
			c := copy(s.buf[s.pos:s.pos+n], b.in[b.p:])
			b.p += c
			s.pos += c
			s.total += c
			n -= c
		}
		if s.stored == 0 {
			s.state = zsHeader
		}
	}
	if s.total > s.max {
		return FormatError("png: zlib: too much image data")
	}
	return nil
}

// finish reads the checksum after the last block.
func (s *zstream) finish() error {
	b := &s.b
	b.get(b.nb & 7) // to a byte boundary
	var want uint32 // big-endian
	for i := 0; i < 4; i++ {
		want = want<<8 | b.get(8)
	}
	if b.overrun() {
		return FormatError("png: zlib: truncated data (missing checksum)")
	}
	s.state = zsDone
	s.adler = adler32Update(s.adler, s.buf[s.summed:s.pos])
	s.summed = s.pos
	if s.total != s.max {
		return FormatError("png: zlib: not enough image data")
	}
	if s.adler != want {
		return FormatError("png: zlib: checksum mismatch")
	}
	return nil
}

// end checks, once every row is read, that the stream ends there and its checksum holds.
func (s *zstream) end() error {
	for s.state != zsDone {
		if s.pos > s.start {
			return FormatError("png: zlib: too much image data")
		}
		s.compact()
		if err := s.more(); err != nil {
			return err
		}
	}
	if s.pos > s.start {
		return FormatError("png: zlib: too much image data")
	}
	return nil
}

// adler32Update is hash/adler32's update (RFC 1950 §8): sums modulo 65521, reduced every
// 5552 bytes, before they can overflow.
func adler32Update(adler uint32, p []byte) uint32 {
	s1, s2 := adler&0xffff, adler>>16
	for len(p) > 0 {
		n := min(len(p), 5552)
		for _, x := range p[:n] {
			s1 += uint32(x)
			s2 += s1
		}
		s1 %= 65521
		s2 %= 65521
		p = p[n:]
	}
	return s2<<16 | s1
}

var fixedLens = func() (l [288 + 30]uint8) {
	for i := range l {
		switch {
		case i < 144:
			l[i] = 8
		case i < 256:
			l[i] = 9
		case i < 280:
			l[i] = 7
		case i < 288:
			l[i] = 8
		default:
			l[i] = 5
		}
	}
	return
}()

func (z *inflater) fixed() {
	z.lit.build(fixedLens[:288], litBits, litEntry)
	z.dist.build(fixedLens[288:], distBits, distEntry)
}

var clenOrder = [19]uint8{16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15}

func (z *inflater) dynamic(b *bitReader) error {
	hlit := int(b.get(5)) + 257
	hdist := int(b.get(5)) + 1
	hclen := int(b.get(4)) + 4
	if hlit > 286 || hdist > 30 {
		return FormatError("png: zlib: bad code counts")
	}
	var cl [19]uint8
	for i := 0; i < hclen; i++ {
		cl[clenOrder[i]] = uint8(b.get(3))
	}
	if b.overrun() {
		return errTruncated
	}
	if !z.clen.build(cl[:], 7, func(s int, n uint) uint32 { return uint32(s)<<16 | uint32(n) }) {
		return FormatError("png: zlib: bad code length code")
	}
	lens := z.lens[:hlit+hdist]
	for n := 0; n < len(lens); {
		if b.nb < 16 {
			b.refill()
		}
		e := z.clen.e[b.bits&127]
		if e&31 == 0 {
			return FormatError("png: zlib: invalid code length code")
		}
		b.bits >>= e & 31
		b.nb -= uint(e & 31)
		sym := int(e >> 16)
		if sym < 16 {
			lens[n] = uint8(sym)
			n++
			continue
		}
		var v uint8
		var rep int
		switch sym {
		case 16:
			if n == 0 {
				return FormatError("png: zlib: repeat with no previous length")
			}
			v, rep = lens[n-1], 3+int(b.get(2))
		case 17:
			rep = 3 + int(b.get(3))
		default:
			rep = 11 + int(b.get(7))
		}
		if rep > len(lens)-n {
			return FormatError("png: zlib: too many code lengths")
		}
		for ; rep > 0; rep-- {
			lens[n] = v
			n++
		}
		if b.overrun() {
			return errTruncated
		}
	}
	if b.overrun() {
		return errTruncated
	}
	if lens[256] == 0 {
		return FormatError("png: zlib: no end-of-block code")
	}
	if !z.lit.build(lens[:hlit], litBits, litEntry) {
		return FormatError("png: zlib: bad literal/length code")
	}
	if !z.dist.build(lens[hlit:], distBits, distEntry) {
		return FormatError("png: zlib: bad distance code")
	}
	return nil
}

// codes decodes the symbols of one compressed block into out from pos, until its end of
// block (it reports true) or until pos passes lim (room for one more symbol). The bit buffer lives
// in locals; each symbol starts with at least 48 bits in it: a whole length/distance pair (at
// most 15+5+15+13 = 48 bits) or up to three literals whose codes are in the first-level table
// (at most 3×litBits bits). A pair after one or two of those literals is decoded after the
// next refill (those literals and the pair can take 2×11+48 = 70 bits).
// Reading past the end of the input yields zero bits, counted in pad; consuming one is
// noticed at the next refill (within 56 bits) or when the block ends.
func (z *inflater) codes(b *bitReader, out []byte, pos, lim int) (int, bool, error) {
	lit, dist := z.lit.e, z.dist.e
	if len(lit) < 1<<litBits || len(dist) < 1<<distBits {
		return pos, false, FormatError("png: zlib: internal table error")
	}
	first := (*[1 << litBits]uint32)(lit)
	dfirst := (*[1 << distBits]uint32)(dist)
	in, p, bits, nb := b.in, b.p, b.bits, b.nb
	var err error
symbols:
	for {
		if pos > lim { // out of room for a whole symbol: resumed at the next call
			b.p, b.bits, b.nb = p, bits, nb
			return pos, false, nil
		}
		if nb < 48 {
			if p+8 <= len(in) {
				bits |= binary.LittleEndian.Uint64(in[p:]) << nb
				p += int(63-nb) >> 3
				nb |= 56
			} else {
				b.p, b.bits, b.nb = p, bits, nb
				b.refill()
				if b.overrun() { // zero bits past the end were decoded: stop here
					return pos, false, errTruncated
				}
				in, p, bits, nb = b.in, b.p, b.bits, b.nb
			}
		}
		e := first[bits&(1<<litBits-1)]
		if e&kindMask == kindLit && e != 0 && uint(len(out)-pos) >= 3 {
			// Up to three literals from the first-level table without a refill (a length/
			// distance pair after one or two needs up to 48 bits: refill first).
			o := out[pos : pos+3 : pos+3]
			bits >>= e & 31
			nb -= uint(e & 31)
			o[0] = byte(e >> 16)
			pos++
			if e = first[bits&(1<<litBits-1)]; e&kindMask != kindLit || e == 0 {
				continue symbols
			}
			bits >>= e & 31
			nb -= uint(e & 31)
			o[1] = byte(e >> 16)
			pos++
			if e = first[bits&(1<<litBits-1)]; e&kindMask != kindLit || e == 0 {
				continue symbols
			}
			bits >>= e & 31
			nb -= uint(e & 31)
			o[2] = byte(e >> 16)
			pos++
			continue
		}
		if e&kindMask == kindSub {
			bits >>= e & 31
			nb -= uint(e & 31)
			e = lit[int(e>>16)+int(bits&(1<<(e>>8&15)-1))]
		}
		if n := uint(e & 31); n != 0 {
			bits >>= n
			nb -= n
		} else {
			err = FormatError("png: zlib: invalid literal/length code")
			break
		}
		switch e & kindMask {
		case kindLit:
			if uint(pos) >= uint(len(out)) {
				err = FormatError("png: zlib: too much image data")
				break
			}
			out[pos] = byte(e >> 16)
			pos++
			continue
		case kindEOB:
			b.p, b.bits, b.nb = p, bits, nb
			if b.overrun() {
				return pos, false, errTruncated
			}
			return pos, true, nil
		}
		if err != nil {
			break
		}
		x := uint(e >> 8 & 15)
		length := int(e>>16) + int(bits&(1<<x-1))
		bits >>= x
		nb -= x
		d := dfirst[bits&(1<<distBits-1)]
		if d&kindMask == kindSub {
			bits >>= d & 31
			nb -= uint(d & 31)
			d = dist[int(d>>16)+int(bits&(1<<(d>>8&15)-1))]
		}
		n := uint(d & 31)
		if n == 0 {
			err = FormatError("png: zlib: invalid distance code")
			break
		}
		bits >>= n
		nb -= n
		x = uint(d >> 8 & 15)
		distance := int(d>>16) + int(bits&(1<<x-1))
		bits >>= x
		nb -= x
		if distance > pos {
			err = FormatError("png: zlib: distance too far back")
			break
		}
		if length > len(out)-pos {
			err = FormatError("png: zlib: too much image data")
			break
		}
		dst := out[pos : pos+length]
		if distance >= length {
			copy(dst, out[pos-distance:])
		} else {
			src := out[pos-distance : pos-distance+length] // overlaps dst: byte by byte
			for i := range dst {
				dst[i] = src[i]
			}
		}
		pos += length
	}
	b.p, b.bits, b.nb = p, bits, nb
	if b.overrun() {
		return pos, false, errTruncated // the error came from decoding the zero bits past the end
	}
	return pos, false, err
}
