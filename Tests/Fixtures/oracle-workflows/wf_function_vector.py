import torch
icl = ["hot: cold, big: small, up:", "fast: slow, tall: short, in:", "light: dark, wet: dry, old:"]
with model.trace() as tracer:
    vecs = [].save()
    for p in icl:
        with tracer.invoke(p):
            vecs.append(model.transformer.h[1].attn.output[0][0, -1].save())
fv = torch.stack(vecs).mean(0)
print(fv.shape)
with model.generate("good:", max_new_tokens=3) as tracer:
    model.transformer.h[1].output[0][:, -1] += fv
    out = tracer.result.save()
print(out.tolist())
