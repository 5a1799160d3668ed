#version 330 core
// Instanced sprite quads sampling one texture atlas of premultiplied RGBA.
//
// Coordinates: output pixels, origin top-left, y down. Pixel y maps to NDC
// y = 2*y/H - 1 without a flip, so framebuffer row 0 holds the image's top row
// and a plain glReadPixels returns rows top-to-bottom. The atlas is uploaded
// top row first, so v grows downwards in the sprite as well.
// Blending (set by the caller): ONE, ONE_MINUS_SRC_ALPHA (premultiplied "over").

#if defined VERTEX_SHADER

uniform vec2 u_viewport;  // output size in pixels

in vec4 in_dest;     // per instance: x, y, w, h in output pixels
in vec4 in_uv;       // per instance: u0, v0, u1, v1 in the atlas
in float in_opacity; // per instance: multiplies the premultiplied texel

out vec2 v_uv;
out float v_opacity;

void main() {
    // Triangle strip over the unit square; no vertex buffer needed.
    vec2 corner = vec2(gl_VertexID & 1, gl_VertexID >> 1);
    vec2 pos = in_dest.xy + corner * in_dest.zw;
    gl_Position = vec4(pos / u_viewport * 2.0 - 1.0, 0.0, 1.0);
    v_uv = mix(in_uv.xy, in_uv.zw, corner);
    v_opacity = in_opacity;
}

#elif defined FRAGMENT_SHADER

uniform sampler2D u_atlas;

in vec2 v_uv;
in float v_opacity;

out vec4 f_color;

void main() {
    // Premultiplied data: scaling all four channels is the whole opacity.
    f_color = texture(u_atlas, v_uv) * v_opacity;
}

#endif
