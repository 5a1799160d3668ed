#version 330 core
// RGB to YUV 4:2:0, BT.709 limited range ("TV" levels), as 8-bit codes.
//
// Two variants of one program, chosen by defines (see shaders.program):
//   PACK      1, 2 or 4: codes written per fragment, one per channel of an
//             R8 / RG8 / RGBA8 target PACK times narrower than the plane, so the
//             target's bytes are the plane's bytes (4x fewer fragments: llvmpipe
//             runs this pass on the CPU, and the fragment count is its cost).
//   CHROMA    defined: the U and V targets (two outputs) of a half-size plane,
//             each code the chroma of the mean RGB of a 2x2 block;
//             undefined: the Y target of the full-size plane.
// The source and the targets share one row order (see sprite.glsl), so
// gl_FragCoord addresses the source directly and no flip is needed anywhere.
// Codes are rounded here (floor(x + 0.5)) and written as code / 255, so the
// fixed-point conversion of the target is exact on every driver.

#if defined VERTEX_SHADER

void main() {
    // One triangle that covers the whole viewport; no vertex buffer needed.
    vec2 p = vec2((gl_VertexID << 1) & 2, gl_VertexID & 2);
    gl_Position = vec4(p * 2.0 - 1.0, 0.0, 1.0);
}

#elif defined FRAGMENT_SHADER

#ifndef PACK
#define PACK 1
#endif

uniform sampler2D u_frame;  // the composited RGBA frame (alpha is 1)

const vec3 LUMA = vec3(0.2126, 0.7152, 0.0722);

vec4 code(vec4 x) {
    return floor(clamp(x, 0.0, 255.0) + 0.5) / 255.0;
}

vec3 rgb_at(ivec2 p) {
    return texelFetch(u_frame, p, 0).rgb;
}

#if defined CHROMA

layout(location = 0) out vec4 f_u;
layout(location = 1) out vec4 f_v;

void main() {
    ivec2 p = ivec2(gl_FragCoord.xy);
    vec4 u = vec4(0.0);
    vec4 v = vec4(0.0);
    for (int k = 0; k < PACK; ++k) {
        ivec2 q = ivec2(p.x * PACK + k, p.y) * 2;
        vec3 rgb = 0.25 * (rgb_at(q) + rgb_at(q + ivec2(1, 0))
                           + rgb_at(q + ivec2(0, 1)) + rgb_at(q + ivec2(1, 1)));
        float y = dot(LUMA, rgb);
        u[k] = 128.0 + 224.0 * (rgb.b - y) / 1.8556;
        v[k] = 128.0 + 224.0 * (rgb.r - y) / 1.5748;
    }
    f_u = code(u);
    f_v = code(v);
}

#else

layout(location = 0) out vec4 f_y;

void main() {
    ivec2 p = ivec2(gl_FragCoord.xy);
    vec4 y = vec4(0.0);
    for (int k = 0; k < PACK; ++k) {
        y[k] = 16.0 + 219.0 * dot(LUMA, rgb_at(ivec2(p.x * PACK + k, p.y)));
    }
    f_y = code(y);
}

#endif
#endif
