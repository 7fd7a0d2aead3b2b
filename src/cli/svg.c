// SPDX-License-Identifier: MIT
/*
 * usvm CLI: --plot FILE.svg - a standalone SVG of one run:
 *   top:    bytes of the workload buffers resident in system memory and in
 *           each device's memory over time (stacked areas), with phase marks
 *   bottom: faults per sampler interval by source (CPU, each device)
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "cli.h"

void xml_escape(FILE *f, const char *s)
{
	const unsigned char *p = (const unsigned char *)(s ? s : "");

	for (; *p; p++) {
		switch (*p) {
		case '&': fputs("&amp;", f); break;
		case '<': fputs("&lt;", f); break;
		case '>': fputs("&gt;", f); break;
		case '"': fputs("&quot;", f); break;
		case '\'': fputs("&#39;", f); break;
		default:
			/* XML 1.0 forbids most control characters. */
			if (*p < 0x20 && *p != '\t' && *p != '\n' && *p != '\r')
				fputc('?', f);
			else
				fputc(*p, f);
		}
	}
}

static const char *colors[] = {
	"#9aa5b1", /* system */
	"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728",
	"#9467bd", "#8c564b", "#e377c2", "#17becf",
};
static const char *line_colors[] = {
	"#222222", /* CPU */
	"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728",
	"#9467bd", "#8c564b", "#e377c2", "#17becf",
};

/* A "nice" tick step for [0, max] with about @n ticks. */
static double nice_step(double max, int n)
{
	double raw = max / n, mag, f;

	if (raw <= 0)
		return 1;
	mag = pow(10, floor(log10(raw)));
	f = raw / mag;
	if (f <= 1)
		f = 1;
	else if (f <= 2)
		f = 2;
	else if (f <= 5)
		f = 5;
	else
		f = 10;
	return f * mag;
}

struct panel {
	double x, y, w, h;      /* plot area */
	double xmax, ymax;
};

static double px(const struct panel *p, double t) { return p->x + p->w * t / p->xmax; }
static double py(const struct panel *p, double v) { return p->y + p->h - p->h * v / p->ymax; }

static void axes(FILE *f, const struct panel *p, const char *ylabel, const char *xlabel,
		 double yscale)
{
	double step, v;

	fprintf(f, "<g class=\"axes\" font-size=\"11\" fill=\"#333\">\n");
	fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"none\" "
		"stroke=\"#888\"/>\n", p->x, p->y, p->w, p->h);
	step = nice_step(p->ymax / yscale, 5);
	for (v = 0; v <= p->ymax / yscale + 1e-9; v += step) {
		double y = py(p, v * yscale);

		fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/>\n",
			p->x, y, p->x + p->w, y);
		fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%g</text>\n",
			p->x - 6, y + 4, v);
	}
	step = nice_step(p->xmax, 8);
	for (v = 0; v <= p->xmax + 1e-9; v += step) {
		double x = px(p, v);

		fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#888\"/>\n",
			x, p->y + p->h, x, p->y + p->h + 4);
		fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%g</text>\n",
			x, p->y + p->h + 16, v);
	}
	fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" font-size=\"12\">",
		p->x + p->w / 2, p->y + p->h + 32);
	xml_escape(f, xlabel);
	fputs("</text>\n", f);
	fprintf(f, "<text transform=\"translate(%.1f %.1f) rotate(-90)\" text-anchor=\"middle\" "
		"font-size=\"12\">", p->x - 52, p->y + p->h / 2);
	xml_escape(f, ylabel);
	fputs("</text>\n</g>\n", f);
}

static void legend(FILE *f, double x, double y, const char *const *names, const char *const *cols,
		   unsigned n, int lines)
{
	unsigned i;

	fprintf(f, "<g class=\"legend\" font-size=\"11\">\n");
	for (i = 0; i < n; i++) {
		double yy = y + 16.0 * i;

		if (lines)
			fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" "
				"stroke-width=\"2\"/>\n", x, yy - 4, x + 14, yy - 4, cols[i]);
		else
			fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"14\" height=\"10\" fill=\"%s\"/>\n",
				x, yy - 9, cols[i]);
		fprintf(f, "<text x=\"%.1f\" y=\"%.1f\">", x + 20, yy);
		xml_escape(f, names[i]);
		fputs("</text>\n", f);
	}
	fputs("</g>\n", f);
}

int svg_write(struct cli_run *r, const struct mon_sample *s, unsigned n, const char *path)
{
	const double W = 960, H = 640;
	struct panel top = { 80, 60, 700, 280, 0, 0 }, bot = { 80, 420, 700, 160, 0, 0 };
	const char *names[1 + CLI_MAX_DEVICES];
	char title[256], b[32], ylab[64];
	double bin_s = (double)r->o->sample_ms / 1000.0, *bins = NULL;
	unsigned nser = 1 + r->ndev, i, k, nbins;
	FILE *f;

	f = fopen(path, "w");
	if (!f)
		return -1;
	names[0] = "system memory";
	for (k = 0; k < r->ndev; k++)
		names[k + 1] = r->devname[k];

	/* Extents. */
	top.xmax = r->elapsed_s > 0 ? r->elapsed_s : 1e-3;
	for (i = 0; i < n; i++) {
		double sum = 0;

		if (s[i].t > top.xmax)
			top.xmax = s[i].t;
		for (k = 0; k < nser; k++)
			sum += (double)s[i].resident[k];
		if (sum > top.ymax)
			top.ymax = sum;
	}
	if (top.ymax <= 0)
		top.ymax = 1 << 20;
	top.ymax *= 1.05;
	bot.xmax = top.xmax;

	/* Faults binned per sampler interval, per source. */
	nbins = (unsigned)(top.xmax / bin_s) + 1;
	bins = calloc((size_t)nbins * nser, sizeof(double));
	if (!bins) {
		fclose(f);
		return -1;
	}
	for (i = 0; i < n; i++) {
		unsigned bi = (unsigned)(s[i].t / bin_s);

		if (bi >= nbins)
			bi = nbins - 1;
		bins[(size_t)bi * nser] += (double)s[i].cpu_faults;
		for (k = 0; k < r->ndev; k++)
			bins[(size_t)bi * nser + 1 + k] += (double)s[i].dev_faults[k];
	}
	for (i = 0; i < nbins * nser; i++)
		if (bins[i] > bot.ymax)
			bot.ymax = bins[i];
	bot.ymax = bot.ymax > 0 ? bot.ymax * 1.1 : 1;

	fprintf(f, "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\"?>\n");
	fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" version=\"1.1\" width=\"%.0f\" "
		"height=\"%.0f\" viewBox=\"0 0 %.0f %.0f\" font-family=\"sans-serif\">\n", W, H, W, H);
	snprintf(title, sizeof(title), "usvm run %s: %s working set, %u device%s, %s each",
		 r->wl->name, fmt_bytes(b, sizeof(b), r->size), r->ndev, r->ndev > 1 ? "s" : "",
		 fmt_bytes(ylab, sizeof(ylab), r->dev_mem));
	fputs("<title>", f);
	xml_escape(f, title);
	fputs("</title>\n", f);
	fprintf(f, "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n");
	fprintf(f, "<text x=\"%.0f\" y=\"28\" text-anchor=\"middle\" font-size=\"16\">", W / 2);
	xml_escape(f, title);
	fputs("</text>\n", f);
	fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"13\">Where the workload's bytes are</text>\n",
		top.x, top.y - 8);
	fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"13\">Faults per %u ms, by source</text>\n",
		bot.x, bot.y - 8, r->o->sample_ms);

	axes(f, &top, "resident (MiB)", "time (s)", 1048576.0);
	snprintf(ylab, sizeof(ylab), "faults / %u ms", r->o->sample_ms);
	axes(f, &bot, ylab, "time (s)", 1.0);

	/* Stacked residency areas. */
	if (n > 0) {
		for (k = 0; k < nser; k++) {
			fprintf(f, "<polygon fill=\"%s\" fill-opacity=\"0.85\" stroke=\"none\" points=\"",
				colors[k % 9]);
			for (i = 0; i < n; i++) {
				double lo = 0;
				unsigned j;

				for (j = 0; j < k; j++)
					lo += (double)s[i].resident[j];
				fprintf(f, "%.1f,%.1f ", px(&top, s[i].t),
					py(&top, lo + (double)s[i].resident[k]));
			}
			for (i = n; i-- > 0;) {
				double lo = 0;
				unsigned j;

				for (j = 0; j < k; j++)
					lo += (double)s[i].resident[j];
				fprintf(f, "%.1f,%.1f ", px(&top, s[i].t), py(&top, lo));
			}
			fputs("\"><title>", f);
			xml_escape(f, names[k]);
			fputs("</title></polygon>\n", f);
		}
	} else {
		fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" fill=\"#888\">"
			"no samples (the run was shorter than one sampler interval)</text>\n",
			top.x + top.w / 2, top.y + top.h / 2);
	}

	/* Phase marks. */
	fprintf(f, "<g class=\"phases\" font-size=\"9\" fill=\"#555\">\n");
	for (i = 0; i < r->nphases; i++) {
		double x = px(&top, r->phases[i].t0);

		fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#555\" "
			"stroke-dasharray=\"3,3\" stroke-width=\"0.7\"><title>", x, top.y, x, top.y + top.h);
		xml_escape(f, r->phases[i].name);
		fputs("</title></line>\n", f);
		if (r->nphases <= 12) {
			fprintf(f, "<text transform=\"translate(%.1f %.1f) rotate(90)\">", x + 3, top.y + 4);
			xml_escape(f, r->phases[i].name);
			fputs("</text>\n", f);
		}
	}
	fputs("</g>\n", f);

	/* Fault lines. */
	for (k = 0; k < nser; k++) {
		fprintf(f, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"1.5\" points=\"",
			line_colors[k % 9]);
		for (i = 0; i < nbins; i++)
			fprintf(f, "%.1f,%.1f ", px(&bot, (i + 0.5) * bin_s),
				py(&bot, bins[(size_t)i * nser + k]));
		fputs("\"/>\n", f);
	}

	{
		const char *lnames[1 + CLI_MAX_DEVICES];

		lnames[0] = "CPU";
		for (k = 0; k < r->ndev; k++)
			lnames[k + 1] = r->devname[k];
		legend(f, top.x + top.w + 20, top.y + 12, names, colors, nser, 0);
		legend(f, bot.x + bot.w + 20, bot.y + 12, lnames, line_colors, nser, 1);
	}
	fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"10\" fill=\"#666\">",
		top.x, H - 14);
	{
		char note[200];

		snprintf(note, sizeof(note), "%u samples every %u ms and at phase boundaries; "
			 "dashed lines: phase starts; never-touched pages count as system memory",
			 n, r->o->sample_ms);
		xml_escape(f, note);
	}
	fputs("</text>\n</svg>\n", f);
	free(bins);
	if (ferror(f)) {
		fclose(f);
		return -1;
	}
	return fclose(f) ? -1 : 0;
}
