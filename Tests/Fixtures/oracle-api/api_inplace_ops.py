with model.generate("The Eiffel Tower is in the city of", max_new_tokens=3) as tracer:
    for step in tracer.iter[:3]:
        model.transformer.h[0].attn.output[0][:, -1] *= 0.5
        model.transformer.h[1].mlp.c_fc.output[:, -1, :8] += 1.0
        model.transformer.h[2].mlp.act.output[:, -1] -= 0.1
        model.transformer.ln_f.output[:, -1] *= 1.5
    ids = model.generator.output.save()
print(model.tokenizer.decode(ids[0, -3:]))
