with model.generate("The Eiffel Tower is in the city of", max_new_tokens=3) as tracer:
    for step in tracer.iter[:3]:
        if step == 0:
            cond = model.lm_head.output[0, -1].max() > 0.0
        else:
            if cond:
                model.transformer.h[0].output[0][:] = 0
    out = model.generator.output.save()
print(out)
