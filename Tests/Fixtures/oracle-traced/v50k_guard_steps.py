with model.generate("Hello world, my name is", max_new_tokens=5) as tracer:
    cond = None
    for step in tracer.iter[:5]:
        if cond is not None:
            if cond:
                model.transformer.h[1].output[0][:, -1, :] *= 0.5
        logits = model.lm_head.output[0, -1]
        cond = logits.max() > 1.0
        print(step, round(logits.max().item(), 3))
    out = model.generator.output.save()
print(model.tokenizer.decode(out[0][-5:]))
