/*
 * mkcmyk.c - writes the CMYK and YCCK fixtures of test/run.sh with the system's libjpeg
 * (make.sh builds and runs it; not part of the plugin or the tests).
 *
 *   mkcmyk IN.ppm cmyk|ycck QUALITY > OUT.jpg
 *
 * Each RGB pixel becomes CMYK (K = 255 - max(R,G,B), C = (255 - R - K) * 255 / (255 - K),
 * ...) stored inverted, 255 - ink, as Adobe Photoshop writes it; libjpeg adds the Adobe
 * APP14 marker (transform 0 for CMYK, 2 for YCCK) and, for YCCK, sends the inverted C, M, Y
 * through its RGB->YCbCr transform as 255 - sample, so YCbCr->RGB gives the ink. Decoded
 * back to RGB as (255 - ink)(255 - black)/255, a pixel is its input up to the rounding of
 * the division and the compression.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>

int main(int argc, char **argv) {
    if (argc != 4) { fprintf(stderr, "usage: mkcmyk IN.ppm cmyk|ycck QUALITY > OUT.jpg\n"); return 1; }
    FILE *f = fopen(argv[1], "rb");
    int w, h, max;
    if (!f || fscanf(f, "P6 %d %d %d", &w, &h, &max) != 3 || max != 255 || fgetc(f) == EOF) {
        fprintf(stderr, "%s: not a binary 8-bit PPM\n", argv[1]);
        return 1;
    }
    unsigned char *rgb = malloc((size_t)w * h * 3), *cmyk = malloc((size_t)w * h * 4);
    if (fread(rgb, 3, (size_t)w * h, f) != (size_t)w * h) { fprintf(stderr, "%s: short\n", argv[1]); return 1; }
    for (size_t i = 0; i < (size_t)w * h; i++) {
        int r = rgb[3 * i], g = rgb[3 * i + 1], b = rgb[3 * i + 2];
        int mx = r > g ? (r > b ? r : b) : (g > b ? g : b), k = 255 - mx;
        int c = k == 255 ? 0 : (255 - r - k) * 255 / (255 - k), m = k == 255 ? 0 : (255 - g - k) * 255 / (255 - k),
            y = k == 255 ? 0 : (255 - b - k) * 255 / (255 - k);
        cmyk[4 * i] = (unsigned char)(255 - c), cmyk[4 * i + 1] = (unsigned char)(255 - m);
        cmyk[4 * i + 2] = (unsigned char)(255 - y), cmyk[4 * i + 3] = (unsigned char)(255 - k);
    }
    struct jpeg_compress_struct cinfo;
    struct jpeg_error_mgr jerr;
    cinfo.err = jpeg_std_error(&jerr);
    jpeg_create_compress(&cinfo);
    jpeg_stdio_dest(&cinfo, stdout);
    cinfo.image_width = (JDIMENSION)w, cinfo.image_height = (JDIMENSION)h;
    cinfo.input_components = 4, cinfo.in_color_space = JCS_CMYK;
    jpeg_set_defaults(&cinfo);
    jpeg_set_colorspace(&cinfo, strcmp(argv[2], "ycck") == 0 ? JCS_YCCK : JCS_CMYK);
    jpeg_set_quality(&cinfo, atoi(argv[3]), TRUE);
    cinfo.optimize_coding = TRUE;
    jpeg_start_compress(&cinfo, TRUE);
    while (cinfo.next_scanline < cinfo.image_height) {
        JSAMPROW row = cmyk + (size_t)cinfo.next_scanline * w * 4;
        jpeg_write_scanlines(&cinfo, &row, 1);
    }
    jpeg_finish_compress(&cinfo);
    jpeg_destroy_compress(&cinfo);
    return 0;
}
